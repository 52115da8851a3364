// The address policy moved to src/upstream/ (token realms use it too); src/connect-proxy/ still imports it from here.
export { AddressPolicy, type AddressVerdict, normalizeAddress, parseCidr } from '../../upstream/address-policy.js';
