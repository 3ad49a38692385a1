import {test} from 'uvu'
import * as assert from 'uvu/assert'
import {Etcd3} from 'etcd3'

import {startEtcd, type EtcdServer} from '../helpers/etcd.js'

let etcd: EtcdServer | undefined

test.after(async () => {
  await etcd?.stop()
})

test('a real etcd starts on free ports, stores keys, and survives a restart', async () => {
  etcd = await startEtcd()
  const client = new Etcd3({hosts: etcd.endpoint})
  try {
    await client.put('mooncake/test/k').value('v1')
    assert.is(await client.get('mooncake/test/k').string(), 'v1')
    await etcd.restart()
    assert.is(await client.get('mooncake/test/k').string(), 'v1')
  } finally {
    client.close()
  }
})

test.run()
