// Roles on one watched resource group: the same pair as rbac-watch-sub.bicep, scoped to the group.
// Deployed with scope: resourceGroup(subId, rgName).

@description('Principal id of the importer\'s managed identity.')
param principalId string

@description('ABAC condition (version 2.0) for the RBAC Administrator assignment.')
param rbacAdminCondition string

var readerRoleId = 'acdd72a7-3385-48ef-bd42-f606fba81ae7'
var rbacAdministratorRoleId = 'f58310d9-a9f6-439a-9e8d-f62e7b41a168'

resource reader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, principalId, readerRoleId)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', readerRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'apim-ai-importer: discover AI service accounts and deployments'
  }
}

resource rbacAdministrator 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, principalId, rbacAdministratorRoleId)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', rbacAdministratorRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'apim-ai-importer: grant APIM\'s identity the Cognitive Services (OpenAI) User role on AI accounts'
    conditionVersion: '2.0'
    condition: rbacAdminCondition
  }
}
