// OPTIONAL, OFF BY DEFAULT (main.bicep: apimAppInsightsLogger). An Application Insights logger on the
// target APIM instance that authenticates with APIM's system-assigned managed identity (no
// instrumentation key as a credential: the App Insights resource has local auth disabled), plus the
// service-level ("All APIs") Application Insights diagnostic with custom metrics on, so
// llm-emit-token-metric values reach Application Insights for every imported API.
//
// Needs: APIM's system-assigned identity ON, and Monitoring Metrics Publisher for that identity on the
// Application Insights resource (rbac-app.bicep, apimPrincipalId). Overwrites an existing service-level
// diagnostic named 'applicationinsights'.

param apimName string
param appInsightsId string

@description('Connection string of the Application Insights resource: identifies the ingestion endpoint; with DisableLocalAuth it is not usable without an Entra token.')
param appInsightsConnectionString string

param loggerName string = 'apim-ai-importer-appinsights'

@description('Percentage of requests sampled into Application Insights (metrics from llm-emit-token-metric are not sampled).')
@minValue(0)
@maxValue(100)
param samplingPercentage int = 100

resource apim 'Microsoft.ApiManagement/service@2024-05-01' existing = {
  name: apimName
}

resource logger 'Microsoft.ApiManagement/service/loggers@2024-05-01' = {
  parent: apim
  name: loggerName
  properties: {
    loggerType: 'applicationInsights'
    description: 'apim-ai-importer: Application Insights with APIM managed identity'
    resourceId: appInsightsId
    isBuffered: true
    credentials: {
      connectionString: appInsightsConnectionString
      identityClientId: 'SystemAssigned'
    }
  }
}

resource diagnostic 'Microsoft.ApiManagement/service/diagnostics@2024-05-01' = {
  parent: apim
  name: 'applicationinsights'
  properties: {
    loggerId: logger.id
    alwaysLog: 'allErrors'
    httpCorrelationProtocol: 'W3C'
    logClientIp: false
    verbosity: 'information'
    metrics: true
    sampling: {
      samplingType: 'fixed'
      percentage: samplingPercentage
    }
  }
}
