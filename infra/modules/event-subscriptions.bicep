// Event subscriptions on a (new or existing) subscription system topic, delivering the Cognitive Services
// account and deployment write/delete events to the importer's Event Grid trigger function.

param topicName string

@description('One event subscription per entry: \'\' = whole subscription, else a resource-group subject prefix.')
param subjectPrefixes array

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
]

resource topic 'Microsoft.EventGrid/systemTopics@2025-02-15' existing = {
  name: topicName
}

resource eventSubscriptions 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2025-02-15' = [for prefix in subjectPrefixes: {
  parent: topic
  name: empty(prefix) ? eventSubscriptionName : '${eventSubscriptionName}-${uniqueString(prefix)}'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: functionEndpointId
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
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
          operatorType: 'StringIn'
          key: 'data.status'
          values: [
            'Succeeded'
          ]
        }
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: maxDeliveryAttempts
      eventTimeToLiveInMinutes: eventTimeToLiveInMinutes
    }
    deadLetterWithResourceIdentity: deadLetter ? {
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
  }
}]

output names array = [for (prefix, i) in subjectPrefixes: eventSubscriptions[i].name]
