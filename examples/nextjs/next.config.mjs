import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** @type {import('next').NextConfig} */
export default {
  // This folder is its own project (its own lockfile), not part of the repository's root one.
  turbopack: { root: path.dirname(fileURLToPath(import.meta.url)) },
  images: { unoptimized: true },
  poweredByHeader: false,
};
