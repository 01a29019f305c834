// The importer's own storage account: Functions host storage (identity-based), the Flex Consumption
// deployment container, the reconcile queue (+ poison), the lease-lock container, the run-history table
// and the Event Grid dead-letter container. Shared keys are disabled: every client uses Entra ID.

@description('Storage account name (3-24 lowercase letters and digits).')
@minLength(3)
@maxLength(24)
param name string

param location string
param tags object = {}

@description('Container that holds the Flex Consumption deployment package.')
param deploymentContainerName string

@description('Blob container for Event Grid dead-lettered events.')
param deadLetterContainerName string = 'eventgrid-deadletter'

@description('Replication SKU. ZRS/GZRS where the region supports it gives zone redundancy.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param skuName string = 'Standard_LRS'

// Names the code uses (function_app.py, importer/state): keep them in step with the code.
var queueNames = [
  'reconcile-requests'
  'reconcile-requests-poison'
]
var blobContainerNames = [
  deploymentContainerName
  'locks'
  deadLetterContainerName
]
var tableNames = [
  'runs'
]

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  // checkov:skip=CKV_AZURE_35:Flex Consumption without VNet integration reaches its host storage over the public endpoint; access is Entra-only (allowSharedKeyAccess false), so a deny-by-default firewall would lock out the function host and Event Grid dead-lettering.
  // checkov:skip=CKV_AZURE_59:Same reason as CKV_AZURE_35: public network access is needed without VNet integration; shared keys are disabled and every caller is authorised by RBAC.
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  // checkov:skip=CKV_AZURE_206:Replication is a parameter (skuName); LRS is the default because the data is reconstructible (queue, leases, run history) and the drift timer re-imports everything.
  properties: {
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowCrossTenantReplication: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for containerName in blobContainerNames: {
  parent: blobService
  name: containerName
  properties: {
    publicAccess: 'None'
  }
}]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [for queueName in queueNames: {
  parent: queueService
  name: queueName
}]

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [for tableName in tableNames: {
  parent: tableService
  name: tableName
}]

output id string = storage.id
output name string = storage.name
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output deploymentContainerName string = deploymentContainerName
output deadLetterContainerName string = deadLetterContainerName
