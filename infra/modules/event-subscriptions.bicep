// Event subscriptions on a (new or existing) subscription system topic, delivering to the importer's Event
// Grid trigger function: the Cognitive Services account and deployment write/delete events and the role
// assignments at those accounts (one subscription per watched subject prefix), and, on the topic of the
// APIM instance's subscription, the writes/deletes of the APIM objects the importer makes (hand edits of
// them are repaired within seconds; the importer drops its own writes by the caller's object id).

param topicName string

@description('One event subscription per entry: \'\' = whole subscription, else a resource-group subject prefix.')
param subjectPrefixes array

@description('\'{APIM instance id}/\' when this topic is the APIM instance\'s subscription\'s: one more event subscription for its APIs, API policies, backends, product links and subscriptions. Empty = none.')
param apimSubjectPrefix string = ''

param eventSubscriptionName string

@description('{functionAppId}/functions/{functionName}')
param functionEndpointId string

param deadLetter bool
param deadLetterStorageId string
param deadLetterContainer string
param maxDeliveryAttempts int
param eventTimeToLiveInMinutes int

var includedEventTypes = [
  'Microsoft.Resources.ResourceWriteSuccess'
  'Microsoft.Resources.ResourceDeleteSuccess'
]

var operationNames = [
  'Microsoft.CognitiveServices/accounts/write'
  'Microsoft.CognitiveServices/accounts/delete'
  'Microsoft.CognitiveServices/accounts/deployments/write'
  'Microsoft.CognitiveServices/accounts/deployments/delete'
  'Microsoft.Authorization/roleAssignments/write'
  'Microsoft.Authorization/roleAssignments/delete'
]

// Every subject above is an AI account, one of its deployments, or a role assignment AT an account
// (an extension resource under the account's id): role assignments at any other scope are filtered out.
var accountSubjects = [
  '/providers/Microsoft.CognitiveServices/accounts/'
]

// The APIM objects the importer makes (an API's policy and its diagnostics are their own resource types).
var apimOperationNames = [
  'Microsoft.ApiManagement/service/apis/write'
  'Microsoft.ApiManagement/service/apis/delete'
  'Microsoft.ApiManagement/service/apis/policies/write'
  'Microsoft.ApiManagement/service/apis/policies/delete'
  'Microsoft.ApiManagement/service/apis/diagnostics/write'
  'Microsoft.ApiManagement/service/apis/diagnostics/delete'
  'Microsoft.ApiManagement/service/backends/write'
  'Microsoft.ApiManagement/service/backends/delete'
  'Microsoft.ApiManagement/service/products/apis/write'
  'Microsoft.ApiManagement/service/products/apis/delete'
  'Microsoft.ApiManagement/service/subscriptions/write'
  'Microsoft.ApiManagement/service/subscriptions/delete'
]

var succeeded = {
  operatorType: 'StringIn'
  key: 'data.status'
  values: [
    'Succeeded'
  ]
}

var destination = {
  endpointType: 'AzureFunction'
  properties: {
    resourceId: functionEndpointId
    maxEventsPerBatch: 1
    preferredBatchSizeInKilobytes: 64
  }
}

var retryPolicy = {
  maxDeliveryAttempts: maxDeliveryAttempts
  eventTimeToLiveInMinutes: eventTimeToLiveInMinutes
}

var deadLetterWithResourceIdentity = deadLetter ? {
  identity: {
    type: 'SystemAssigned'
  }
  deadLetterDestination: {
    endpointType: 'StorageBlob'
    properties: {
      resourceId: deadLetterStorageId
      blobContainerName: deadLetterContainer
    }
  }
} : null

resource topic 'Microsoft.EventGrid/systemTopics@2025-02-15' existing = {
  name: topicName
}

resource eventSubscriptions 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2025-02-15' = [for prefix in subjectPrefixes: {
  parent: topic
  name: empty(prefix) ? eventSubscriptionName : '${eventSubscriptionName}-${uniqueString(prefix)}'
  properties: {
    destination: destination
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: includedEventTypes
      subjectBeginsWith: prefix
      isSubjectCaseSensitive: false
      enableAdvancedFilteringOnArrays: true
      advancedFilters: [
        {
          operatorType: 'StringIn'
          key: 'data.operationName'
          values: operationNames
        }
        {
          operatorType: 'StringContains'
          key: 'subject'
          values: accountSubjects
        }
        succeeded
      ]
    }
    retryPolicy: retryPolicy
    deadLetterWithResourceIdentity: deadLetterWithResourceIdentity
  }
}]

resource apimEventSubscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2025-02-15' = if (!empty(apimSubjectPrefix)) {
  parent: topic
  name: '${eventSubscriptionName}-apim'
  properties: {
    destination: destination
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: includedEventTypes
      subjectBeginsWith: apimSubjectPrefix
      isSubjectCaseSensitive: false
      enableAdvancedFilteringOnArrays: true
      advancedFilters: [
        {
          operatorType: 'StringIn'
          key: 'data.operationName'
          values: apimOperationNames
        }
        succeeded
      ]
    }
    retryPolicy: retryPolicy
    deadLetterWithResourceIdentity: deadLetterWithResourceIdentity
  }
}

output names array = [for (prefix, i) in subjectPrefixes: eventSubscriptions[i].name]
output apimName string = empty(apimSubjectPrefix) ? '' : apimEventSubscription.name
