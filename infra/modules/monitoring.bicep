// Log Analytics workspace + workspace-based Application Insights with local (key) auth disabled.
// Telemetry is accepted only with a Microsoft Entra token: the function app sends with its managed
// identity (APPLICATIONINSIGHTS_AUTHENTICATION_STRING) and needs Monitoring Metrics Publisher (rbac-app.bicep).

@description('Log Analytics workspace name.')
param logAnalyticsName string

@description('Application Insights component name.')
param applicationInsightsName string

param location string
param tags object = {}

@description('Days of log retention in the workspace.')
@minValue(30)
param retentionInDays int = 30

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
    features: {
      // No shared-key ingestion or query: everything goes through Entra ID.
      disableLocalAuth: true
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: applicationInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logAnalytics.id
    IngestionMode: 'LogAnalytics'
    // Instrumentation-key ingestion is refused; only Entra-authenticated telemetry is accepted.
    DisableLocalAuth: true
  }
}

output logAnalyticsId string = logAnalytics.id
output appInsightsId string = appInsights.id
output appInsightsName string = appInsights.name
// The connection string names the ingestion endpoint; with DisableLocalAuth it is not a credential
// (ingestion still needs an Entra token). Read from the resource's properties, not from a list* call.
output appInsightsConnectionString string = appInsights.properties.ConnectionString
