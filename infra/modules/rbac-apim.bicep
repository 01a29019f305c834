// API Management Service Contributor for the importer, on the target APIM instance only
// (not its resource group or subscription). Deployed into the APIM instance's resource group.

@description('Name of the existing API Management instance (in this module\'s resource group).')
param apimName string

@description('Principal id of the importer\'s managed identity.')
param principalId string

var apiManagementServiceContributorRoleId = '312a565d-c81f-4fd8-895a-4e21e48d571c'

resource apim 'Microsoft.ApiManagement/service@2024-05-01' existing = {
  name: apimName
}

resource apimContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(apim.id, principalId, apiManagementServiceContributorRoleId)
  scope: apim
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', apiManagementServiceContributorRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'apim-ai-importer: import AI service accounts as APIs'
  }
}
