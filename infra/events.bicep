// Event Grid wiring for ONE subscription. Run by the azd postdeploy hook (infra/hooks/events.py), once per
// subscription that holds a watched scope or the APIM instance, with `az deployment sub create --subscription <sub>`:
// the AzureFunction endpoint must exist (code deployed) or the event subscription fails with
// "Destination endpoint not found".
//
// There is no Cognitive Services system topic: ARM events come from the subscription's system topic
// (Microsoft.Resources.Subscriptions, location global). A resource-group scope is a subject filter
// (subjectBeginsWith '/subscriptions/<sub>/resourceGroups/<rg>/') on that same topic, so a subscription
// carries one system topic whatever the number of watched groups (Azure allows one system topic per source).
targetScope = 'subscription'

@description('Resource group (in this subscription) that holds the system topic.')
param topicResourceGroupName string

@description('Create topicResourceGroupName (false when it already exists, e.g. the app\'s own group).')
param createResourceGroup bool = false

@description('Region of the resource group when it is created (the topic itself is global).')
param location string

param tags object = {}

@description('Create the system topic. False when the subscription already has one (Azure allows one per source): then only event subscriptions are added to it.')
param createTopic bool = true

@description('Name of the system topic (new or existing).')
param topicName string

@description('Principal id of an EXISTING topic\'s system-assigned identity (createTopic false); empty when it has none.')
param existingTopicPrincipalId string = ''

@description('Dead-letter undeliverable events to the importer\'s storage with the topic\'s identity. The hook sets false for an existing topic without a system-assigned identity.')
param deadLetter bool = true

@description('One event subscription per entry: \'\' for the whole subscription, or a subject prefix \'/subscriptions/<sub>/resourceGroups/<rg>/\'.')
param subjectPrefixes array

@description('\'{APIM instance id}/\' when the instance is in this subscription: its APIs, API policies, backends, product links and subscriptions are watched too (hand edits of the importer\'s objects are repaired by event). Empty = none.')
param apimSubjectPrefix string = ''

@description('Event subscription name (prefix for the resource-group ones); unique per importer environment.')
@minLength(3)
@maxLength(48)
param eventSubscriptionName string

@description('Resource id of the importer\'s Function App.')
param functionAppId string

@description('The Event Grid trigger function.')
param functionName string = 'on_resource_event'

@description('Resource id of the importer\'s storage account (dead-letter destination).')
param deadLetterStorageId string

param deadLetterContainer string = 'eventgrid-deadletter'

@minValue(1)
@maxValue(30)
param maxDeliveryAttempts int = 30

@minValue(1)
@maxValue(1440)
param eventTimeToLiveInMinutes int = 1440

// /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.Storage/storageAccounts/<name>
var storageParts = split(deadLetterStorageId, '/')

resource topicRg 'Microsoft.Resources/resourceGroups@2024-03-01' = if (createResourceGroup) {
  name: topicResourceGroupName
  location: location
  tags: tags
}

module topic 'modules/events-topic.bicep' = if (createTopic) {
  name: 'importer-events-topic-${uniqueString(topicName)}'
  scope: resourceGroup(topicResourceGroupName)
  params: {
    topicName: topicName
    tags: tags
  }
  dependsOn: [
    topicRg
  ]
}

module deadLetterRole 'modules/rbac-deadletter.bicep' = if (deadLetter) {
  name: 'importer-events-dl-${uniqueString(subscription().id, topicName)}'
  scope: resourceGroup(storageParts[2], storageParts[4])
  params: {
    storageAccountName: storageParts[8]
    containerName: deadLetterContainer
    principalId: createTopic ? topic.outputs.principalId : existingTopicPrincipalId
  }
}

module subscriptions 'modules/event-subscriptions.bicep' = {
  name: 'importer-events-subs-${uniqueString(topicName, eventSubscriptionName)}'
  scope: resourceGroup(topicResourceGroupName)
  params: {
    topicName: topicName
    subjectPrefixes: subjectPrefixes
    apimSubjectPrefix: apimSubjectPrefix
    eventSubscriptionName: eventSubscriptionName
    functionEndpointId: '${functionAppId}/functions/${functionName}'
    deadLetter: deadLetter
    deadLetterStorageId: deadLetterStorageId
    deadLetterContainer: deadLetterContainer
    maxDeliveryAttempts: maxDeliveryAttempts
    eventTimeToLiveInMinutes: eventTimeToLiveInMinutes
  }
  dependsOn: [
    topic
    deadLetterRole
  ]
}

output topicName string = topicName
output topicResourceGroupName string = topicResourceGroupName
