// apim-ai-importer: Azure deployment (azd). Subscription scope: creates the resource group, the Function
// App (Flex Consumption, Python 3.11, system-assigned identity), its storage and monitoring, and the role
// assignments the importer needs on the APIM instance and on every watched scope (which may be in other
// subscriptions). The Event Grid system topics and subscriptions are NOT here: they need the function code
// deployed first, so the azd postdeploy hook runs infra/events.bicep (see docs/deploy.md).
//
// Every app setting the code reads (importer/settings.py SETTINGS) is set in `appSettings` below; the test
// tests/infra/test_settings_sync.py keeps the two in step.
targetScope = 'subscription'

// ---------------------------------------------------------------------------------------------------
// azd environment
// ---------------------------------------------------------------------------------------------------

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; seeds resource names and the azd-env-name tag.')
param environmentName string

@minLength(1)
@description('Region for the resource group and its resources.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Resource group name; empty = rg-<environmentName>.')
param resourceGroupName string = ''

// ---------------------------------------------------------------------------------------------------
// What the importer works on
// ---------------------------------------------------------------------------------------------------

@minLength(1)
@description('Resource id of the target API Management instance (/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.ApiManagement/service/<name>). -> IMPORTER_APIM_ID')
param apimResourceId string

@minLength(1)
@description('Scopes to watch: comma-separated subscription ids (/subscriptions/<sub>) and/or resource-group ids (/subscriptions/<sub>/resourceGroups/<rg>). A comma-separated string, not a Bicep array, because azd environment values are strings. -> IMPORTER_SCOPES')
param watchScopes string

// ---------------------------------------------------------------------------------------------------
// Importer defaults (each maps to one app setting; defaults equal importer/settings.py)
// ---------------------------------------------------------------------------------------------------

@description('Default client-compatibility mode(s), comma-separated, each published as its own API: azure-openai, azure-ai, azure-openai-v1 (checked by the importer). -> IMPORTER_MODE')
param importerMode string = 'azure-openai'

@description('Default OpenAPI document: bundled (the project\'s own, inline) or official (Microsoft\'s, imported by link). -> IMPORTER_OPENAPI')
@allowed([
  'bundled'
  'official'
])
param openapi string = 'bundled'

@description('Where the official OpenAPI documents are (a folder URL ending in /; https). The app downloads them, so it must reach this host. -> IMPORTER_OPENAPI_BASE_URL')
param openapiBaseUrl string = 'https://raw.githubusercontent.com/Azure-Samples/AI-Gateway/561d71992bd660af94efc76a8f2f21df0e6ac8e5/modules/apim/v3/specs/'

@description('Default API base path; {account} is replaced by the account name. -> IMPORTER_BASE_PATH')
param basePath string = '{account}'

@description('Comma-separated ids of existing APIM products to link each API to. -> IMPORTER_PRODUCTS')
param products string = ''

@description('Only import accounts tagged apim-importer=enabled. -> IMPORTER_OPT_IN')
param optIn bool = false

@description('Default tokens-per-minute limit per subscription key; empty = no token-limit policy. -> IMPORTER_TOKENS_PER_MINUTE')
param tokensPerMinute string = ''

@description('Default token quota as N/Period (Hourly, Daily, Weekly, Monthly, Yearly); empty = none. -> IMPORTER_TOKEN_QUOTA')
param tokenQuota string = ''

@description('Emit token metrics (llm-emit-token-metric). Name an Application Insights logger in apimLogger (or turn on apimAppInsightsLogger), or the metrics go nowhere. -> IMPORTER_TOKEN_METRICS')
param tokenMetrics bool = false

@description('Metric namespace for token metrics. -> IMPORTER_METRICS_NAMESPACE')
param metricsNamespace string = 'ai-gateway'

@description('Embeddings deployment used for semantic caching; empty = no caching. -> IMPORTER_SEMANTIC_CACHE_DEPLOYMENT')
param semanticCacheDeployment string = ''

@description('Resource id of an Azure AI Content Safety resource; empty = no content-safety policy. The importer reads its endpoint and grants APIM\'s identity Cognitive Services User on it; this deployment gives the importer Reader and the constrained RBAC Administrator on that resource. -> IMPORTER_CONTENT_SAFETY_ID')
param contentSafetyId string = ''

@description('Id of an existing APIM logger of type applicationInsights that each imported API\'s applicationinsights diagnostic sends token metrics to (with apimAppInsightsLogger on: apim-ai-importer-appinsights). -> IMPORTER_APIM_LOGGER')
param apimLogger string = ''

@description('Log LLM request and response messages through each imported API\'s azuremonitor diagnostic (prompts and completions reach Log Analytics). -> IMPORTER_LLM_LOGGING')
param llmLogging bool = false

@description('Add a circuit breaker to each backend. -> IMPORTER_CIRCUIT_BREAKER')
param circuitBreaker bool = false

@description('Id of a policy fragment included in every imported API\'s inbound policy. -> IMPORTER_POLICY_FRAGMENT')
param policyFragment string = ''

@description('Let the importer turn on APIM\'s system-assigned identity at run time (a PATCH of `identity` only). -> IMPORTER_ENABLE_APIM_IDENTITY')
param enableApimIdentity bool = false

@description('Take over a foreign API or backend that has the importer\'s id (a path clash stays a conflict). -> IMPORTER_ADOPT')
param adopt bool = false

@description('Probe after an apply: off, routing (no tokens) or call (one tiny request per deployment). -> IMPORTER_PROBE')
@allowed([
  'off'
  'routing'
  'call'
])
param probe string = 'routing'

@description('Base path of the unified, capacity-aware APIs (one per mode in use, routing each deployment name to a backend pool); empty = off. -> IMPORTER_POOL_PATH')
param poolPath string = ''

@description('NCRONTAB schedule of the drift reconcile timer. -> IMPORTER_TIMER_SCHEDULE')
param timerSchedule string = '0 */30 * * * *'

@description('Object id of the importer\'s own identity, whose ARM change events (its own writes) are ignored. Empty (the default) = the oid claim of its managed identity\'s ARM token, which is the system-assigned identity\'s principal id: the site cannot be given its own principal id as a setting without a dependency cycle. -> IMPORTER_PRINCIPAL_ID')
param importerPrincipalId string = ''

@description('Optional Event Grid custom topic endpoint for outcome events; empty = none. -> IMPORTER_EVENT_TOPIC_ENDPOINT')
param eventTopicEndpoint string = ''

@description('Name of the Event Grid event subscriptions the postdeploy hook makes for the watched scopes (a resource-group scope\'s gets \'-\' and a 13-character suffix); empty = apim-ai-importer-<environment name>. The app gets the name that was used, so `doctor` can check them. -> IMPORTER_EVENT_SUBSCRIPTION')
@maxLength(48)
param eventSubscriptionName string = ''

// ---------------------------------------------------------------------------------------------------
// Deployment options (no app setting)
// ---------------------------------------------------------------------------------------------------

@description('Resource id of the Event Grid custom topic behind eventTopicEndpoint; when set, the importer gets EventGrid Data Sender on it. Empty = no role (grant it yourself).')
param eventTopicResourceId string = ''

@description('OFF BY DEFAULT. Turn on APIM\'s system-assigned identity from Bicep by re-PUTting the live APIM instance (modules/apim-identity.bicep): read the risks in docs/deploy.md first. Prefer enableApimIdentity.')
param apimIdentityViaBicep bool = false

@description('OFF BY DEFAULT. Create an Application Insights logger on APIM authenticated with APIM\'s managed identity, and the service-level diagnostic with custom metrics, so token metrics reach Application Insights. Needs APIM\'s system identity on (now, or via apimIdentityViaBicep). Overwrites the service-level diagnostic "applicationinsights".')
param apimAppInsightsLogger bool = false

@description('Upper bound on function instances (Flex Consumption: 40-1000).')
@minValue(40)
@maxValue(1000)
param functionMaximumInstanceCount int = 40

@description('Function instance memory in MB.')
@allowed([
  512
  2048
  4096
])
param functionInstanceMemoryMB int = 2048

@description('Storage replication SKU.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param storageSkuName string = 'Standard_LRS'

@description('Event Grid delivery attempts before dead-lettering (used by the postdeploy hook, infra/events.bicep).')
@minValue(1)
@maxValue(30)
param eventMaxDeliveryAttempts int = 30

@description('Event Grid event time-to-live in minutes (used by the postdeploy hook, infra/events.bicep).')
@minValue(1)
@maxValue(1440)
param eventTimeToLiveInMinutes int = 1440

// ---------------------------------------------------------------------------------------------------
// Names and derived values
// ---------------------------------------------------------------------------------------------------

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
  'managed-by': 'apim-ai-importer'
}
var rgName = !empty(resourceGroupName) ? resourceGroupName : 'rg-${environmentName}'
var functionAppName = 'func-${resourceToken}'
var storageAccountName = 'st${resourceToken}'
var deploymentContainerName = 'app-package-${take(resourceToken, 7)}'
var deadLetterContainerName = 'eventgrid-deadletter'
// What infra/hooks/events.py names the event subscriptions (it reads DEPLOY_EVENT_SUBSCRIPTION_NAME):
// letters, digits and '-' (azd environment names may also hold _ . ( )), at most 48 characters.
var eventSubscriptionEnv = replace(replace(replace(replace(toLower(environmentName), '_', '-'), '.', '-'), '(', '-'), ')', '-')
var eventSubscriptionBase = !empty(eventSubscriptionName) ? eventSubscriptionName : 'apim-ai-importer-${take(eventSubscriptionEnv, 31)}'

// Scopes: trimmed, empties dropped. A subscription id splits into 3 parts, a resource-group id into 5.
// The postdeploy hook (infra/hooks/events.py) validates the same list before provisioning.
var scopeListRaw = [for s in split(watchScopes, ','): trim(s)]
var scopeList = filter(scopeListRaw, s => !empty(s))
var subscriptionScopes = filter(scopeList, s => length(split(s, '/')) == 3)
var resourceGroupScopes = filter(scopeList, s => length(split(s, '/')) == 5)

// /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.ApiManagement/service/<name>
var apimParts = split(apimResourceId, '/')
var apimSubscriptionId = apimParts[2]
var apimResourceGroupName = apimParts[4]
var apimName = apimParts[8]

// Placeholder ids keep the (skipped) module's scope expressions valid when no topic is given.
var outcomeTopicParts = split(empty(eventTopicResourceId) ? '${subscription().id}/resourceGroups/${rgName}/providers/Microsoft.EventGrid/topics/none' : eventTopicResourceId, '/')

// Role Based Access Control Administrator, constrained (ABAC, conditionVersion 2.0): the importer may
// create and delete role assignments only for Cognitive Services OpenAI User
// (5e0bd9bd-7b93-4f28-af87-19fc36ad61bd) and Cognitive Services User (a97b65f3-24c7-4388-baec-2e87135dc908),
// and only for service principals (APIM's managed identity). Documented shape:
// https://learn.microsoft.com/azure/role-based-access-control/delegate-role-assignments-examples
// The importer must send principalType ServicePrincipal in its role-assignment PUT for the write branch to match.
var rbacAdminCondition = '''
(
 (
  !(ActionMatches{'Microsoft.Authorization/roleAssignments/write'})
 )
 OR
 (
  @Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {5e0bd9bd-7b93-4f28-af87-19fc36ad61bd, a97b65f3-24c7-4388-baec-2e87135dc908}
  AND
  @Request[Microsoft.Authorization/roleAssignments:PrincipalType] ForAnyOfAnyValues:StringEqualsIgnoreCase {'ServicePrincipal'}
 )
)
AND
(
 (
  !(ActionMatches{'Microsoft.Authorization/roleAssignments/delete'})
 )
 OR
 (
  @Resource[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {5e0bd9bd-7b93-4f28-af87-19fc36ad61bd, a97b65f3-24c7-4388-baec-2e87135dc908}
  AND
  @Resource[Microsoft.Authorization/roleAssignments:PrincipalType] ForAnyOfAnyValues:StringEqualsIgnoreCase {'ServicePrincipal'}
 )
)
'''

// ---------------------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------------------

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: rgName
  location: location
  tags: tags
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: storageAccountName
    location: location
    tags: tags
    skuName: storageSkuName
    deploymentContainerName: deploymentContainerName
    deadLetterContainerName: deadLetterContainerName
  }
}

// The app settings: every setting in importer/settings.py SETTINGS, plus the platform's own
// APPLICATIONINSIGHTS_* settings. Two documented exceptions (see tests/infra/test_settings_sync.py):
//   IMPORTER_ARM_ENDPOINT  present and empty: it only points at the local ARM stand-in.
//   AzureWebJobsStorage    absent: storage is identity-based through AzureWebJobsStorage__accountName.
var appSettings = [
  {
    name: 'IMPORTER_APIM_ID'
    value: apimResourceId
  }
  {
    name: 'IMPORTER_SCOPES'
    value: join(scopeList, ',')
  }
  {
    name: 'IMPORTER_ARM_ENDPOINT'
    value: ''
  }
  {
    name: 'IMPORTER_MODE'
    value: importerMode
  }
  {
    name: 'IMPORTER_OPENAPI'
    value: openapi
  }
  {
    name: 'IMPORTER_OPENAPI_BASE_URL'
    value: openapiBaseUrl
  }
  {
    name: 'IMPORTER_BASE_PATH'
    value: basePath
  }
  {
    name: 'IMPORTER_PRODUCTS'
    value: products
  }
  {
    name: 'IMPORTER_OPT_IN'
    value: optIn ? 'true' : 'false'
  }
  {
    name: 'IMPORTER_TOKENS_PER_MINUTE'
    value: tokensPerMinute
  }
  {
    name: 'IMPORTER_TOKEN_QUOTA'
    value: tokenQuota
  }
  {
    name: 'IMPORTER_TOKEN_METRICS'
    value: tokenMetrics ? 'true' : 'false'
  }
  {
    name: 'IMPORTER_METRICS_NAMESPACE'
    value: metricsNamespace
  }
  {
    name: 'IMPORTER_SEMANTIC_CACHE_DEPLOYMENT'
    value: semanticCacheDeployment
  }
  {
    name: 'IMPORTER_CONTENT_SAFETY_ID'
    value: contentSafetyId
  }
  {
    name: 'IMPORTER_APIM_LOGGER'
    value: apimLogger
  }
  {
    name: 'IMPORTER_LLM_LOGGING'
    value: llmLogging ? 'true' : 'false'
  }
  {
    name: 'IMPORTER_CIRCUIT_BREAKER'
    value: circuitBreaker ? 'true' : 'false'
  }
  {
    name: 'IMPORTER_POLICY_FRAGMENT'
    value: policyFragment
  }
  {
    name: 'IMPORTER_ENABLE_APIM_IDENTITY'
    value: enableApimIdentity ? 'true' : 'false'
  }
  {
    name: 'IMPORTER_ADOPT'
    value: adopt ? 'true' : 'false'
  }
  {
    name: 'IMPORTER_TIMER_SCHEDULE'
    value: timerSchedule
  }
  {
    name: 'IMPORTER_PRINCIPAL_ID'
    value: importerPrincipalId
  }
  {
    name: 'IMPORTER_EVENT_TOPIC_ENDPOINT'
    value: eventTopicEndpoint
  }
  {
    name: 'IMPORTER_EVENT_SUBSCRIPTION'
    value: eventSubscriptionBase
  }
  {
    name: 'IMPORTER_PROBE'
    value: probe
  }
  {
    name: 'IMPORTER_POOL_PATH'
    value: poolPath
  }
  {
    name: 'AzureWebJobsStorage__accountName'
    value: storage.outputs.name
  }
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: monitoring.outputs.appInsightsConnectionString
  }
  {
    // System-assigned identity: no ClientId; the SDK sends telemetry with an Entra token.
    name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
    value: 'Authorization=AAD'
  }
]

module functionApp 'modules/function-app.bicep' = {
  name: 'function-app'
  scope: rg
  params: {
    name: functionAppName
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    siteTags: {
      'azd-service-name': 'importer'
    }
    storageBlobEndpoint: storage.outputs.blobEndpoint
    deploymentContainerName: storage.outputs.deploymentContainerName
    appSettings: appSettings
    maximumInstanceCount: functionMaximumInstanceCount
    instanceMemoryMB: functionInstanceMemoryMB
  }
}

// The live APIM instance, read with reference(): for its identity (logger option) and, only with
// apimIdentityViaBicep, to send its own settings back in the re-PUT. ARM evaluates it only where used.
var apimFull = reference(apimResourceId, '2024-05-01', 'Full')

module apimIdentity 'modules/apim-identity.bicep' = if (apimIdentityViaBicep) {
  name: 'importer-apim-identity-${take(resourceToken, 8)}'
  scope: resourceGroup(apimSubscriptionId, apimResourceGroupName)
  params: {
    apimName: apimName
    location: apimFull.location
    sku: apimFull.sku
    zones: apimFull.?zones ?? []
    tags: apimFull.?tags ?? {}
    properties: apimFull.properties
    currentIdentity: apimFull.?identity ?? {}
  }
}

var apimPrincipalId = apimIdentityViaBicep ? apimIdentity.outputs.principalId : (apimFull.?identity.?principalId ?? '')

module appRoles 'modules/rbac-app.bicep' = {
  name: 'rbac-app'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    functionPrincipalId: functionApp.outputs.principalId
    apimPrincipalId: apimAppInsightsLogger ? apimPrincipalId : ''
  }
}

module apimRoles 'modules/rbac-apim.bicep' = {
  name: 'importer-apim-rbac-${take(resourceToken, 8)}'
  scope: resourceGroup(apimSubscriptionId, apimResourceGroupName)
  params: {
    apimName: apimName
    principalId: functionApp.outputs.principalId
  }
}

module apimLogger 'modules/apim-logger.bicep' = if (apimAppInsightsLogger) {
  name: 'importer-apim-logger-${take(resourceToken, 8)}'
  scope: resourceGroup(apimSubscriptionId, apimResourceGroupName)
  params: {
    apimName: apimName
    appInsightsId: monitoring.outputs.appInsightsId
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
  }
  dependsOn: [
    appRoles
  ]
}

module watchSubscriptionRoles 'modules/rbac-watch-sub.bicep' = [for s in subscriptionScopes: {
  name: 'importer-watch-${uniqueString(s, resourceToken)}'
  scope: subscription(split(s, '/')[2])
  params: {
    principalId: functionApp.outputs.principalId
    rbacAdminCondition: rbacAdminCondition
  }
}]

module watchResourceGroupRoles 'modules/rbac-watch-rg.bicep' = [for s in resourceGroupScopes: {
  name: 'importer-watch-${uniqueString(s, resourceToken)}'
  scope: resourceGroup(split(s, '/')[2], split(s, '/')[4])
  params: {
    principalId: functionApp.outputs.principalId
    rbacAdminCondition: rbacAdminCondition
  }
}]

// /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.CognitiveServices/accounts/<name>;
// placeholder parts keep the (skipped) module's scope expression valid when none is given.
var contentSafetyParts = split(empty(contentSafetyId) ? '${subscription().id}/resourceGroups/${rgName}/providers/Microsoft.CognitiveServices/accounts/none' : contentSafetyId, '/')

module contentSafetyRoles 'modules/rbac-content-safety.bicep' = if (!empty(contentSafetyId)) {
  name: 'importer-safety-rbac-${take(resourceToken, 8)}'
  scope: resourceGroup(contentSafetyParts[2], contentSafetyParts[4])
  params: {
    contentSafetyName: contentSafetyParts[8]
    principalId: functionApp.outputs.principalId
    rbacAdminCondition: rbacAdminCondition
  }
}

module outcomeTopicRoles 'modules/rbac-outcome-topic.bicep' = if (!empty(eventTopicResourceId)) {
  name: 'importer-topic-rbac-${take(resourceToken, 8)}'
  scope: resourceGroup(outcomeTopicParts[2], outcomeTopicParts[4])
  params: {
    topicName: outcomeTopicParts[8]
    principalId: functionApp.outputs.principalId
  }
}

// ---------------------------------------------------------------------------------------------------
// Outputs (azd stores them in .azure/<env>/.env; the hooks read them)
// ---------------------------------------------------------------------------------------------------

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_APP_ID string = functionApp.outputs.id
output AZURE_FUNCTION_PRINCIPAL_ID string = functionApp.outputs.principalId
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_APPLICATION_INSIGHTS_NAME string = monitoring.outputs.appInsightsName
output DEPLOY_WATCH_SCOPES string = join(scopeList, ',')
output DEPLOY_APIM_RESOURCE_ID string = apimResourceId
output DEPLOY_DEADLETTER_STORAGE_ID string = storage.outputs.id
output DEPLOY_DEADLETTER_CONTAINER string = storage.outputs.deadLetterContainerName
output DEPLOY_EVENT_MAX_DELIVERY_ATTEMPTS int = eventMaxDeliveryAttempts
output DEPLOY_EVENT_TTL_MINUTES int = eventTimeToLiveInMinutes
output DEPLOY_EVENT_SUBSCRIPTION_NAME string = eventSubscriptionBase
