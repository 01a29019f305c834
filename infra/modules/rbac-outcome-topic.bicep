// Optional: EventGrid Data Sender for the importer on the custom topic that receives its outcome events
// (IMPORTER_EVENT_TOPIC_ENDPOINT). Deployed into the topic's resource group; only when a topic id is given.

@description('Name of the existing Event Grid custom topic (in this module\'s resource group).')
param topicName string

@description('Principal id of the importer\'s managed identity.')
param principalId string

var eventGridDataSenderRoleId = 'd5a91429-5739-47e2-a06b-3470a27159e7'

resource topic 'Microsoft.EventGrid/topics@2025-02-15' existing = {
  name: topicName
}

resource dataSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(topic.id, principalId, eventGridDataSenderRoleId)
  scope: topic
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', eventGridDataSenderRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'apim-ai-importer: publish outcome events'
  }
}
