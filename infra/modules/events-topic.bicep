// The subscription's system topic (ARM resource events), with a system-assigned identity used to write
// dead-lettered events to the importer's storage. Deployed into a resource group of the watched
// subscription; the topic's source is that subscription.

param topicName string
param tags object = {}

resource topic 'Microsoft.EventGrid/systemTopics@2025-02-15' = {
  name: topicName
  location: 'global'
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: subscription().id
    topicType: 'Microsoft.Resources.Subscriptions'
  }
}

output principalId string = topic.identity.principalId
