export * from './lib/errors.js'
export * from './lib/units.js'
export {compileSearchRegex, enableLinearRegex} from './lib/regex-engine.js'
