// Role assignments inside the importer's own resource group: storage data roles for the function's
// identity on its own storage account only, and Monitoring Metrics Publisher on its Application Insights.
// Optionally Monitoring Metrics Publisher for APIM's identity (APIM logger with managed identity).

param storageAccountName string
param appInsightsName string

@description('Principal id of the function app\'s system-assigned identity.')
param functionPrincipalId string

@description('Principal id of APIM\'s system-assigned identity, for the optional identity-based APIM logger; empty = none.')
param apimPrincipalId string = ''

// Built-in role definition ids (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles).
var storageBlobDataOwnerRoleId = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var storageQueueDataContributorRoleId = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var storageTableDataContributorRoleId = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var monitoringMetricsPublisherRoleId = '3913510d-42f4-4e42-8a64-420c390055eb'

// Blob Data Owner (not Contributor): the Functions host manages blob leases and containers
// (azure-webjobs-hosts, timer singleton locks), the importer leases blobs in `locks`.
var storageRoleIds = [
  storageBlobDataOwnerRoleId
  storageQueueDataContributorRoleId
  storageTableDataContributorRoleId
]

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource storageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in storageRoleIds: {
  name: guid(storage.id, functionPrincipalId, roleId)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}]

resource functionMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, functionPrincipalId, monitoringMetricsPublisherRoleId)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisherRoleId)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource apimMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(apimPrincipalId)) {
  name: guid(appInsights.id, apimPrincipalId, monitoringMetricsPublisherRoleId)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisherRoleId)
    principalId: apimPrincipalId
    principalType: 'ServicePrincipal'
  }
}
