// Preloaded into npm by the tests (NODE_OPTIONS=--require <this file>): replaces Sigstore's TUF
// client, which would fetch trusted_root.json from tuf-repo-cdn.sigstore.dev, with one that
// serves the trusted root in the file named by TESSERA_TEST_TRUSTED_ROOT (the tests' stand-in
// Sigstore). Every other export of @sigstore/tuf is the real one. Without that variable set,
// nothing is replaced.
'use strict'

const fs = require('fs')
const Module = require('module')

const TRUSTED_ROOT_TARGET = 'trusted_root.json'
const realLoad = Module._load
// One stand-in per copy of @sigstore/tuf (npm may carry more than one).
const standIns = new WeakMap()

Module._load = function load (request, parent, isMain) {
  const loaded = realLoad.apply(this, arguments)
  if (!process.env.TESSERA_TEST_TRUSTED_ROOT || !/tuf/.test(request)) {
    return loaded
  }
  if (!standIns.has(loaded)) {
    // `@sigstore/tuf` as npm's modules ask for it, or a path to that package.
    const path = Module._resolveFilename(request, parent, isMain)
    if (!/[\\/]@sigstore[\\/]tuf[\\/]dist[\\/]index\.js$/.test(path)) {
      return loaded
    }
    standIns.set(loaded, standIn(loaded, Module.createRequire(path)))
  }
  return standIns.get(loaded)
}

function standIn (real, requireNearTuf) {
  const { TrustedRoot } = requireNearTuf('@sigstore/protobuf-specs')
  const rootJson = () => fs.readFileSync(process.env.TESSERA_TEST_TRUSTED_ROOT, 'utf8')
  const client = {
    async refresh () {},
    // Only the trusted root is a target: npm's audit asks for `<registry>/keys.json` first
    // and falls back to the registry's /-/npm/v1/keys when that is not found.
    async getTarget (name) {
      if (name === TRUSTED_ROOT_TARGET) {
        return rootJson()
      }
      throw new real.TUFError({ code: 'TUF_FIND_TARGET_ERROR', message: `target ${name} not found` })
    },
  }
  // Keeps the real module's properties (its getters and __esModule too), then overrides.
  const tuf = Object.defineProperties({}, Object.getOwnPropertyDescriptors(real))
  Object.defineProperty(tuf, 'getTrustedRoot', {
    enumerable: true,
    value: async () => TrustedRoot.fromJSON(JSON.parse(rootJson())),
  })
  Object.defineProperty(tuf, 'initTUF', { enumerable: true, value: async () => client })
  return tuf
}
