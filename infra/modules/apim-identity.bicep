// OPTIONAL, OFF BY DEFAULT (main.bicep: apimIdentityViaBicep). Turns on the system-assigned identity of
// an EXISTING API Management instance.
//
// RISK: Bicep/ARM has no PATCH. This module re-PUTs the whole service with the values read from the live
// instance (sku, location, zones, tags, properties, identities). Anything the GET does not return cannot
// be sent back: uploaded custom-domain certificates (hostnameConfigurations with encodedCertificate)
// make the PUT fail, and a PUT on a large APIM can run for many minutes. Prefer the importer's own
// switch (IMPORTER_ENABLE_APIM_IDENTITY, a runtime PATCH of `identity` only) or
// `az apim update --enable-managed-identity true`. See docs/deploy.md.

param apimName string
param location string
param sku object
param zones array = []
param tags object = {}

@description('The live instance\'s `properties`, sent back unchanged.')
param properties object

@description('The live instance\'s `identity` (may be empty); user-assigned identities are kept.')
param currentIdentity object = {}

var userAssigned = contains(currentIdentity, 'userAssignedIdentities') ? currentIdentity.userAssignedIdentities : {}
var identity = empty(userAssigned) ? {
  type: 'SystemAssigned'
} : {
  type: 'SystemAssigned, UserAssigned'
  userAssignedIdentities: userAssigned
}

resource apim 'Microsoft.ApiManagement/service@2024-05-01' = {
  name: apimName
  location: location
  sku: sku
  zones: empty(zones) ? null : zones
  tags: tags
  identity: identity
  // checkov:skip=CKV_AZURE_107:This module only re-applies the live instance's own settings plus a system identity; the instance's network and TLS posture is owned by whoever owns the APIM instance.
  // checkov:skip=CKV_AZURE_173:Same as CKV_AZURE_107: TLS/cipher customProperties are sent back unchanged from the live instance.
  // checkov:skip=CKV_AZURE_174:Same as CKV_AZURE_107: public network access is the live instance's setting, sent back unchanged.
  properties: properties
}

output principalId string = apim.identity.principalId
