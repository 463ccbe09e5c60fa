import { createRequire } from 'node:module';

/** This package's version (src/ and dist/ sit at the same depth below package.json). */
export const PACKAGE_VERSION: string = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;
