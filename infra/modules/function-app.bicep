// The importer: a Python 3.11 Function App on the Flex Consumption plan (FC1) with a system-assigned
// managed identity. The runtime is set in functionAppConfig.runtime (Flex ignores FUNCTIONS_WORKER_RUNTIME
// and FUNCTIONS_EXTENSION_VERSION); the code package lives in a blob container read with the identity.

param name string
param planName string
param location string
param tags object = {}

@description('Tags for the site only: azd finds the app to deploy by azd-service-name.')
param siteTags object = {}

@description('Storage account that hosts the deployment container (identity-based access).')
param storageBlobEndpoint string

@description('Blob container for the deployment package.')
param deploymentContainerName string

@description('App settings, as [{name, value}]. Built in main.bicep (appSettings), checked against importer/settings.py.')
param appSettings array

@description('Upper bound on scale-out (Flex Consumption: 40 to 1000).')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Instance memory size in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  // checkov:skip=CKV_AZURE_225:Flex Consumption (FC1) zone redundancy is opt-in per region and needs always-ready instances; the importer is event-driven and idempotent (Event Grid retries for 24 h, the drift timer catches up).
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, siteTags)
  // checkov:skip=CKV_AZURE_222:The app must stay publicly reachable: Event Grid delivers to the AzureFunction endpoint over the public network (this deployment has no VNet or private endpoint).
  // checkov:skip=CKV_AZURE_212:Flex Consumption has no minimum-instance (failover) setting: instances scale from zero per trigger, and Event Grid retries for up to 24 h.
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  // checkov:skip=CKV_AZURE_17:Client certificates are not used: callers are Event Grid (system key) and operators (function keys).
  // checkov:skip=CKV_AZURE_213:App Service health check is not available on Flex Consumption; the host is monitored through Application Insights.
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    publicNetworkAccess: 'Enabled'
    clientCertEnabled: false
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: appSettings
    }
  }
}

// No basic-auth publishing credentials: azd deploys with an Entra token.
resource ftpPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

output id string = site.id
output name string = site.name
output principalId string = site.identity.principalId
output defaultHostName string = site.properties.defaultHostName
