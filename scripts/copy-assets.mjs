// Copies non-TypeScript assets (protobuf definitions) from src/ to dist/ after tsc.
import {cpSync, readdirSync, statSync, mkdirSync} from 'node:fs'
import path from 'node:path'

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..')
const ASSET = /\.(proto|json)$/

function walk(dir) {
  for (const name of readdirSync(dir)) {
    const file = path.join(dir, name)
    if (statSync(file).isDirectory()) walk(file)
    else if (ASSET.test(name)) {
      const target = path.join(root, 'dist', path.relative(path.join(root, 'src'), file))
      mkdirSync(path.dirname(target), {recursive: true})
      cpSync(file, target)
    }
  }
}
walk(path.join(root, 'src'))
