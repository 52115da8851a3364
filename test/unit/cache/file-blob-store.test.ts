import { blobStoreSuite } from './blob-store-suite.js';

// The file store keeps nothing of its own for an upload: the spool file is the fill's to remove.
blobStoreSuite('files', async () => ({ config: { kind: 'file' }, expectNoLeftovers: async () => undefined }));
