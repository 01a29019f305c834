// Roles on the Azure AI Content Safety resource named by contentSafetyId (IMPORTER_CONTENT_SAFETY_ID),
// wherever it lives: the importer reads its endpoint (Reader) and grants APIM's identity Cognitive
// Services User on it (RBAC Administrator, constrained by the same ABAC condition as on the watched
// scopes). Deployed with scope: resourceGroup(subId, rgName) of the resource.

@description('Name of the Content Safety resource (a Cognitive Services account).')
param contentSafetyName string

@description('Principal id of the importer\'s managed identity.')
param principalId string

@description('ABAC condition (version 2.0) for the RBAC Administrator assignment.')
param rbacAdminCondition string

var readerRoleId = 'acdd72a7-3385-48ef-bd42-f606fba81ae7'
var rbacAdministratorRoleId = 'f58310d9-a9f6-439a-9e8d-f62e7b41a168'

resource contentSafety 'Microsoft.CognitiveServices/accounts@2024-10-01' existing = {
  name: contentSafetyName
}

resource reader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(contentSafety.id, principalId, readerRoleId)
  scope: contentSafety
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', readerRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'apim-ai-importer: read the Content Safety endpoint'
  }
}

resource rbacAdministrator 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(contentSafety.id, principalId, rbacAdministratorRoleId)
  scope: contentSafety
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', rbacAdministratorRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'apim-ai-importer: grant APIM\'s identity Cognitive Services User on the Content Safety resource'
    conditionVersion: '2.0'
    condition: rbacAdminCondition
  }
}
