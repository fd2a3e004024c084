#!/usr/bin/env python3
"""Writes the binary seed corpora of tests/fuzz (the wire batches), so they
can be read and remade: python3 tests/fuzz/make_seeds.py. The JSON seeds
are plain files in corpus/<harness>/."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def task(tid, reply, data, itype=3, deadline=1700000000000000, slo=100000):
    reply = reply.encode() if isinstance(reply, str) else reply
    return (struct.pack('<QQIBH', tid, deadline, slo, itype, len(reply)) + reply +
            struct.pack('<I', len(data)) + data)


def tasks(*items, count=None):
    return b'CLT1' + struct.pack('<I', len(items) if count is None else count) + b''.join(items)


def result(tid, status, data):
    return struct.pack('<QBI', tid, status, len(data)) + data


def results(*items, count=None):
    return b'CLR1' + struct.pack('<I', len(items) if count is None else count) + b''.join(items)


FE = 'clipper.fe.0123456789abcdef.results.m'
SEEDS = {
    'wire_tasks': {
        'empty_batch': tasks(),
        'one_doubles': tasks(task(1, FE, struct.pack('<2d', 1.5, -2.25))),
        'three_types': tasks(task(7, FE, struct.pack('<3i', 1, 2, 3), itype=1),
                             task(8, FE, b'hello', itype=4),
                             task(9, 'clipper.fe.other.results.m', b'\x00\xff', itype=0)),
        'empty_reply_and_input': tasks(task(2, '', b'', itype=0)),
        'max_ids': tasks(task(2**64 - 1, FE, b'x', deadline=2**64 - 1, slo=2**32 - 1)),
        'unknown_type': tasks(task(3, FE, b'', itype=5)),
        'truncated': tasks(task(4, FE, b'abcdef'))[:-3],
        'count_too_big': tasks(task(5, FE, b''), count=1000),
        'trailing_bytes': tasks(task(6, FE, b'1')) + b'junk',
        'nul_in_reply': tasks(task(10, 'clipper.fe\x00x.results', b'')),
        'bad_magic': b'CLR1' + tasks(task(1, FE, b''))[4:],
        'other_prefix_reply': tasks(task(11, 'other.fe.x.results.m', b'')),
        'admin_reply': tasks(task(12, 'clipper.admin.delete_app', b'')),
        'crlf_in_reply': tasks(task(13, 'clipper.fe.x.results\r\nPUB x 1', b'')),
        'wildcard_reply': tasks(task(14, 'clipper.fe.*.results.m', b'')),
    },
    'wire_results': {
        'empty_batch': results(),
        'ok_json': results(result(1, 0, b'3.0')),
        'every_status': results(*[result(i, i, b'text %d' % i) for i in range(5)]),
        'not_json_output': results(result(2, 0, b'plain text')),
        'unknown_status': results(result(3, 9, b'')),
        'truncated': results(result(4, 0, b'abcdef'))[:-2],
        'count_too_big': results(result(5, 0, b''), count=99),
        'trailing_bytes': results(result(6, 0, b'[1, 2]')) + b'\x00',
        'big_len': b'CLR1' + struct.pack('<I', 1) + struct.pack('<QBI', 1, 0, 2**32 - 1) + b'ab',
        'bad_magic': b'CLT1' + results(result(1, 0, b''))[4:],
    },
}

for harness, seeds in SEEDS.items():
    d = os.path.join(HERE, 'corpus', harness)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, name), 'wb') as f:
            f.write(data)
