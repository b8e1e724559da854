#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
#
# make bench: runs guest-memfd-bench (conversion cost, upstream's scheme,
# footprint, scaling) and whole QEMU processes (startup with prealloc=on),
# then prints one table.  Every figure is measured in several repeats and
# shown as "median [min-max]" over them; ratios are taken repeat by repeat
# between figures measured side by side.
#
# Needs only the Python standard library.  As root it raises the host's
# 2 MiB hugetlb pool for the run (footprint and startup need 4 GiB of it)
# and puts the previous size back afterwards.

import argparse
import ctypes
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

HUGE_2M = '/sys/kernel/mm/hugepages/hugepages-2048kB'
HUGE_1G = '/sys/kernel/mm/hugepages/hugepages-1048576kB'
HUGE_POOLS = ((HUGE_2M, 2 * 1024**2), (HUGE_1G, 1024**3))
STARTUP_GIB = 4


def read_int(path, default=-1):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return default


def write_int(path, value):
    with open(path, 'w') as f:
        f.write('%d\n' % value)


class HugePool:
    """Raise the 2 MiB pool for the run; give the pages back afterwards."""

    def __init__(self, want_free):
        self.want_free = want_free
        self.previous = None
        self.set_to = None

    def __enter__(self):
        nr = read_int(HUGE_2M + '/nr_hugepages')
        free = read_int(HUGE_2M + '/free_hugepages')
        if nr < 0 or free >= self.want_free:
            return self
        if os.geteuid() != 0:
            print('bench: not root: the 2 MiB pool has %d free pages, %d '
                  'wanted; rows that need more say n/a' %
                  (free, self.want_free), file=sys.stderr)
            return self
        self.previous = nr
        try:
            write_int(HUGE_2M + '/nr_hugepages',
                      nr + self.want_free - free)
        except OSError as e:
            print('bench: cannot raise the 2 MiB pool: %s' % e,
                  file=sys.stderr)
        self.set_to = read_int(HUGE_2M + '/nr_hugepages')
        return self

    def __exit__(self, *exc):
        if self.previous is None:
            return False
        now = read_int(HUGE_2M + '/nr_hugepages')
        if now != self.set_to:
            print('bench: somebody changed the 2 MiB pool to %d pages; '
                  'leaving it' % now, file=sys.stderr)
            return False
        write_int(HUGE_2M + '/nr_hugepages', self.previous)
        return False

    def note(self):
        if self.previous is None:
            return None
        return ('2 MiB hugetlb pool raised from %d to %d pages for the run '
                'and restored afterwards' % (self.previous, self.set_to))


# Figures: key -> list of values, one per repeat

class Results:
    def __init__(self):
        self.figs = {}
        self.units = {}
        self.notes = []

    def add(self, key, value, unit=''):
        self.figs.setdefault(key, []).append(value)
        self.units[key] = unit

    def has(self, key):
        return bool(self.figs.get(key))

    def get(self, key):
        return self.figs.get(key, [])

    def median(self, key):
        v = self.get(key)
        return statistics.median(v) if v else None


def run_core_bench(binary, args, res):
    cmd = [binary, '--repeats', str(args.repeats),
           '--footprint-gib', str(args.footprint_gib),
           '--max-vm-gib', str(args.max_vm_gib),
           '--parts', args.parts]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE,
                         universal_newlines=True).stdout
    for line in out.splitlines():
        obj = json.loads(line)
        if 'note' in obj:
            res.notes.append(obj['note'])
            continue
        for v in obj['values']:
            res.add(obj['key'], v, obj['unit'])


# Part 4: startup of whole QEMU processes

STARTUP_CONFIGS = [
    # (key, label, -object, needs 2 MiB pages, needs 1 GiB pages); QEMU
    # madvises guest RAM for THP, so 4 KiB anonymous memory needs THP off.
    ('ram-4k', 'ram, THP off (4 KiB pages)',
     'memory-backend-ram,id=m,size=%dG,prealloc=on', False, False),
    ('ram-thp', 'ram, THP as the host has it',
     'memory-backend-ram,id=m,size=%dG,prealloc=on', False, False),
    ('gmem-1g', 'guest-memfd 1G, model, simulated pool',
     'memory-backend-guest-memfd,id=m,size=%dG,pagesize=1G,kernel-model=on,'
     'x-simulated-pool=on,prealloc=on', False, False),
    ('memfd-1g', 'memfd hugetlb 1G',
     'memory-backend-memfd,id=m,size=%dG,hugetlb=on,hugetlbsize=1G,'
     'prealloc=on', False, True),
    ('memfd-2m', 'memfd hugetlb 2M (substitute)',
     'memory-backend-memfd,id=m,size=%dG,hugetlb=on,hugetlbsize=2M,'
     'prealloc=on', True, False),
    ('gmem-2m', 'guest-memfd 2M, model, host 2M pool',
     'memory-backend-guest-memfd,id=m,size=%dG,pagesize=2M,kernel-model=on,'
     'prealloc=on', True, False),
]


def qmp_read(sock_file):
    line = sock_file.readline()
    if not line:
        raise EOFError('QMP connection closed')
    return json.loads(line)


def qmp_command(sock_file, sock, cmd):
    sock.sendall((json.dumps({'execute': cmd}) + '\n').encode())
    while True:
        msg = qmp_read(sock_file)
        if 'return' in msg or 'error' in msg:
            return msg


def qemu_error(proc):
    """QEMU's own error once it has exited: the first line of its stderr
    that is not a warning."""
    try:
        err = proc.communicate(timeout=10)[1]
    except subprocess.TimeoutExpired:
        proc.kill()
        err = proc.communicate()[1]
    lines = err.decode(errors='replace').strip().splitlines()
    errors = [line for line in lines if 'warning:' not in line]
    if errors or lines:
        return (errors or lines)[0]
    return 'exited with status %d' % proc.returncode


def proc_cpu_seconds(pid):
    """User + system time of all threads, dead ones included."""
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def proc_rss_bytes(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) * 1024
    return 0


def disable_thp():
    """In the child: no transparent huge pages (kept across exec)."""
    PR_SET_THP_DISABLE = 41
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)


def start_qemu_once(qemu, obj, tmpdir, no_thp):
    """Wall and CPU seconds until QMP answers, memory populated by then;
    or None and QEMU's error when it exits first (even after accepting the
    QMP connection, as when prealloc fails)."""
    path = os.path.join(tmpdir, 'qmp.sock')
    if os.path.exists(path):
        os.unlink(path)
    cmd = [qemu, '-accel', 'qtest', '-machine', 'q35,memory-backend=m',
           '-m', '%dG' % STARTUP_GIB, '-display', 'none', '-nodefaults',
           '-object', obj, '-qmp', 'unix:%s,server=on,wait=off' % path]
    free0 = [read_int(d + '/free_hugepages', 0) for d, _ in HUGE_POOLS]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE,
                            preexec_fn=disable_thp if no_thp else None)
    sock = None
    try:
        while True:
            if proc.poll() is not None:
                return None, qemu_error(proc)
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(path)
                break
            except OSError:
                sock.close()
                sock = None
                time.sleep(0.001)
        sock_file = sock.makefile('r')
        try:
            qmp_read(sock_file)                     # greeting
            qmp_command(sock_file, sock, 'qmp_capabilities')
        except (ConnectionError, EOFError):
            return None, qemu_error(proc)
        wall = time.monotonic() - t0
        cpu = proc_cpu_seconds(proc.pid)
        # hugetlb pages are not in VmRSS: count what the pools gave
        populated = proc_rss_bytes(proc.pid) + sum(
            (f - read_int(d + '/free_hugepages', 0)) * size
            for (d, size), f in zip(HUGE_POOLS, free0))
        try:
            qmp_command(sock_file, sock, 'quit')
        except (ConnectionError, EOFError):
            pass                                    # gone already: fine
        proc.wait(timeout=60)
        return (wall, cpu, populated), None
    finally:
        if sock:
            sock.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def bench_startup(qemu, repeats, res):
    free_2m = read_int(HUGE_2M + '/free_hugepages', 0)
    pages_2m = STARTUP_GIB * 512
    with tempfile.TemporaryDirectory(prefix='gmem-bench-') as tmpdir:
        for key, label, obj, need_2m, need_1g in STARTUP_CONFIGS:
            if need_1g and read_int(HUGE_1G + '/nr_hugepages', 0) < \
                    STARTUP_GIB:
                res.notes.append('startup %s: n/a (no 1 GiB hugetlb pool)'
                                 % label)
                res.figs['startup.%s.na' % key] = ['n/a (no 1 GiB pool)']
                continue
            if need_2m and free_2m < pages_2m:
                res.figs['startup.%s.na' % key] = \
                    ['n/a (%d free 2 MiB pages, %d needed)' %
                     (free_2m, pages_2m)]
                continue
            # One untimed run first: the binary in the page cache, the
            # pool's pages touched once, as on any host after boot.
            for r in range(repeats + 1):
                m, err = start_qemu_once(qemu, obj % STARTUP_GIB, tmpdir,
                                         key == 'ram-4k')
                if m is None:
                    res.figs['startup.%s.na' % key] = ['n/a (%s)' % err]
                    break
                if not r:
                    continue
                res.add('startup.%s.wall' % key, m[0] * 1000, 'ms')
                res.add('startup.%s.cpu' % key, m[1] * 1000, 'ms')
                res.add('startup.%s.populated' % key, m[2] / 1024**3, 'GiB')


# The table

def fmt_num(v):
    """Three significant digits, with k/M/G for large numbers."""
    if v is None:
        return '-'
    for above, scale, suffix in ((1e9, 1e9, 'G'), (1e6, 1e6, 'M'),
                                 (1e4, 1e3, 'k')):
        if abs(v) >= above:
            return '%.3g%s' % (v / scale, suffix)
    return '%.0f' % v if abs(v) >= 100 else '%.3g' % v


def fmt_values(values):
    if not values:
        return 'n/a'
    if isinstance(values[0], str):
        return values[0]
    med = statistics.median(values)
    lo, hi = min(values), max(values)
    if fmt_num(lo) == fmt_num(hi):
        return fmt_num(med)
    return '%s [%s-%s]' % (fmt_num(med), fmt_num(lo), fmt_num(hi))


def ratio_values(a, b):
    """Per-repeat ratios a/b of two figures measured side by side."""
    n = min(len(a), len(b))
    if not n or isinstance(a[0], str) or isinstance(b[0], str):
        return []
    return [x / y for x, y in zip(a[:n], b[:n]) if y]


def fmt_r(v):
    return '%.0f' % v if v >= 100 else '%.3g' % v


def fmt_ratio(values):
    if not values:
        return 'n/a'
    med = statistics.median(values)
    lo, hi = min(values), max(values)
    if fmt_r(lo) == fmt_r(hi):
        return fmt_r(med) + 'x'
    return '%sx [%s-%s]' % (fmt_r(med), fmt_r(lo), fmt_r(hi))


class Table:
    def __init__(self):
        self.rows = []      # ('section', text) or ('row', [cells])

    def section(self, text):
        self.rows.append(('section', text))

    def header(self, *cells):
        self.rows.append(('header', list(cells)))

    def row(self, *cells):
        self.rows.append(('row', list(cells)))

    def note(self, text):
        """Text under the rows so far, e.g. a footnote."""
        self.rows.append(('note', text))

    def render(self):
        ncol = max(len(c) for k, c in self.rows
                   if k not in ('section', 'note'))
        width = [0] * ncol
        for kind, cells in self.rows:
            if kind in ('section', 'note'):
                continue
            for i, c in enumerate(cells):
                width[i] = max(width[i], len(c))
        total = sum(width) + 3 * (ncol - 1)
        out = ['=' * total]
        for kind, cells in self.rows:
            if kind == 'section':
                out.append('-' * total)
                out += textwrap.wrap(cells, total)
                continue
            if kind == 'note':
                out += textwrap.wrap(cells, total, subsequent_indent='    ')
                continue
            line = []
            for i, c in enumerate(cells):
                line.append(c.ljust(width[i]) if i == 0 else
                            c.rjust(width[i]))
            out.append('   '.join(line).rstrip())
        out.append('=' * total)
        return '\n'.join(out)


def range_label(rng):
    return {'4K': '4 KiB', '2M': '2 MiB', '1G': '1 GiB'}[rng]


def table_convert(t, res, args):
    g = res.get
    t.section('1. Conversion through the core (guest_memfd_state_convert), '
              '1 GiB-folio file; ns per request (each direction), '
              'A = model kernel, B = null kernel (QEMU\'s own work)')
    t.header('figure', 'A model', 'B null', 'A/B')
    for rng in ('4K', '2M', '1G'):
        for p in ('p50', 'p99'):
            a = g('convert.model.%s.%s' % (rng, p))
            b = g('convert.null.%s.%s' % (rng, p))
            t.row('%s range, %s ns' % (range_label(rng), p), fmt_values(a),
                  fmt_values(b), fmt_ratio(ratio_values(a, b)))
    t.row('  timer overhead in every sample, ns', '',
          fmt_values(g('timer.overhead')), '')
    t.header('253-entry list, contiguous 4 KiB', 'A coalesced',
             'B per entry', 'A/B')
    for k in ('model', 'null'):
        a = g('psc.%s.coalesced.entries_per_s' % k)
        b = g('psc.%s.per-entry.entries_per_s' % k)
        t.row('%s: requests (entries)/s' % k, fmt_values(a), fmt_values(b),
              fmt_ratio(ratio_values(a, b)))
        t.row('%s: kernel calls per list' % k,
              fmt_values(g('psc.%s.coalesced.kernel_calls' % k)),
              fmt_values(g('psc.%s.per-entry.kernel_calls' % k)), '')


def table_upstream(t, res, args):
    g = res.get
    t.section('2. Upstream scheme (attributes + discard of the other side, as '
              'kvm_convert_memory) vs in-place, same ranges; ns per request. '
              'No /dev/kvm: the KVM attribute ioctl is the same no-op '
              'function on both sides; the discards are real')
    t.header('figure', 'A upstream', 'B in-place, no-op',
             'C in-place, model', 'A/B', 'A/C')
    for rng in ('4K', '2M', '1G'):
        for p in ('p50', 'p99'):
            a = g('upstream.upstream.%s.%s' % (rng, p))
            b = g('upstream.attr.%s.%s' % (rng, p))
            c = g('upstream.model.%s.%s' % (rng, p))
            t.row('%s range, %s ns' % (range_label(rng), p), fmt_values(a),
                  fmt_values(b), fmt_values(c),
                  fmt_ratio(ratio_values(a, b)),
                  fmt_ratio(ratio_values(a, c)))


def table_footprint(t, res, args):
    g = res.get
    t.section('3. Host memory in use (hugetlb + shmem + anonymous), MiB, '
              'for a %d GiB guest that shares 50%% of its memory and '
              'converts it back; A = upstream two-backing (private '
              'guest_memfd + shared backing), B = in-place guest_memfd '
              '(model); 2 MiB hugetlb pages stand in for 1 GiB (none here)' %
              (res.median('footprint.guest_gib') or args.footprint_gib))
    t.header('figure', 'A two-backing', 'B in-place', 'B/A')
    for when, label in (('shared', 'while 50% shared'),
                        ('returned', 'after converting back')):
        for layout, lname in (('two-backing', 'hugetlb'),
                              ('two-backing-4k', '4 KiB')):
            a = g('footprint.%s.%s.total' % (layout, when))
            b = g('footprint.in-place.%s.total' % when)
            t.row('%s, A shared side %s' % (label, lname), fmt_values(a),
                  fmt_values(b), fmt_ratio(ratio_values(b, a)))
        t.row('  of which hugetlb pages',
              fmt_values(g('footprint.two-backing.%s.hugetlb' % when)),
              fmt_values(g('footprint.in-place.%s.hugetlb' % when)), '')
        t.row('  2 MiB pool pages gone (cross-check)',
              fmt_values(g('footprint.two-backing.%s.pool_taken' % when)),
              fmt_values(g('footprint.in-place.%s.pool_taken' % when)), '')


def table_startup(t, res, args):
    g = res.get
    t.section('4. Startup, prealloc=on, %d GiB, QEMU -accel qtest from exec '
              'until QMP answers; speed-up = wall of ram with 4 KiB pages / '
              'wall of this row' % STARTUP_GIB)
    t.header('backend', 'wall ms', 'CPU ms', 'GiB populated', 'speed-up')
    base = g('startup.ram-4k.wall')
    footnotes = []
    for key, label, _, _, _ in STARTUP_CONFIGS:
        na = g('startup.%s.na' % key)
        if na:
            t.row(label, na[0], '', '', '')
            continue
        wall = g('startup.%s.wall' % key)
        populated = g('startup.%s.populated' % key)
        if key == 'ram-4k':
            speedup = ''
        elif populated and statistics.median(populated) < STARTUP_GIB / 2:
            # Starting fast by not allocating the memory is no speed-up.
            footnotes.append(
                '(%d) %s: populated only %s GiB of its %d GiB by the time '
                'QMP answered; starting without allocating the memory is '
                'no speed-up at allocating it' %
                (len(footnotes) + 1, label,
                 fmt_num(statistics.median(populated)),
                 STARTUP_GIB))
            speedup = 'n/a (%d)' % len(footnotes)
        else:
            speedup = fmt_ratio(ratio_values(base, wall))
        t.row(label, fmt_values(wall), fmt_values(g('startup.%s.cpu' % key)),
              fmt_values(populated), speedup)
    for n in footnotes:
        t.note(n)


# Memory-API guard: instructions per 8-byte address_space_read(), counted
# by valgrind's callgrind (exact and repeatable: no timer involved).
GUARD_READS = 2000
GUARD_BACKEND = ['-machine', 'memory-backend=mem0', '-object',
                 'memory-backend-guest-memfd,id=mem0,size=64M,'
                 'kernel-model=on,init-shared=on']
GUARD_CONFIGS = (
    # key, label, extra QEMU arguments, guest-physical address read
    ('ram', '(a) RAM, no guest_memfd backend', [], 0x100000),
    ('gmem', '(b) guest_memfd RAM, page shared', GUARD_BACKEND, 0x100000),
    ('mmio-plain', '(c0) MMIO (HPET), no guest_memfd backend', [],
     0xfed00000),
    ('mmio', '(c) MMIO (HPET), guest_memfd backend present', GUARD_BACKEND,
     0xfed00000),
)


def guard_instructions(qemu, extra, addr):
    """Instructions inside address_space_read_full() per qtest 8-byte read,
    or a string saying why there is no figure."""
    if not shutil.which('valgrind'):
        return 'valgrind is not installed'
    with tempfile.TemporaryDirectory(prefix='gmem-guard-') as tmp:
        out = os.path.join(tmp, 'callgrind.out')
        proc = subprocess.Popen(
            ['valgrind', '--tool=callgrind', '--callgrind-out-file=' + out,
             '--collect-atstart=no',
             '--toggle-collect=address_space_read_full', qemu,
             '-machine', 'q35', '-m', '64M', '-display', 'none',
             '-nodefaults', '-qtest', 'stdio', '-accel', 'qtest'] + extra,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True)
        for _ in range(GUARD_READS):
            proc.stdin.write('read 0x%x 0x8\n' % addr)
            proc.stdin.flush()
            line = proc.stdout.readline()
            while line and not line.startswith(('OK', 'FAIL')):
                line = proc.stdout.readline()
            if not line:
                proc.kill()
                proc.wait()
                return 'QEMU exited under valgrind'
        proc.terminate()
        proc.wait(timeout=120)
        try:
            with open(out) as f:
                m = re.search(r'^(?:summary|totals): (\d+)', f.read(), re.M)
        except OSError:
            m = None
        if not m:
            return 'callgrind wrote no totals'
        return int(m.group(1)) / GUARD_READS


def bench_guard(qemu, res):
    for key, _, extra, addr in GUARD_CONFIGS:
        ir = guard_instructions(qemu, extra, addr)
        if isinstance(ir, str):
            res.add('guard.%s.na' % key, 'n/a (%s)' % ir)
        else:
            res.add('guard.%s.ir' % key, ir)


def table_guard(t, res, args):
    g = res.get
    t.section('6. Memory-API guard: instructions per 8-byte '
              'address_space_read() from qtest (valgrind callgrind, exact), '
              'vs the row it must match')
    t.header('read', 'instructions', 'ratio')
    refs = {'gmem': 'ram', 'mmio': 'mmio-plain'}
    for key, label, _, _ in GUARD_CONFIGS:
        na = g('guard.%s.na' % key)
        if na:
            t.row(label, na[0], '')
            continue
        ir = g('guard.%s.ir' % key)
        ratio = ''
        if key in refs and g('guard.%s.ir' % refs[key]):
            ratio = '%.3fx vs %s' % (statistics.median(ir) / statistics.median(
                g('guard.%s.ir' % refs[key])), refs[key] == 'ram' and '(a)'
                or '(c0)')
        t.row(label, fmt_num(statistics.median(ir)), ratio)
    t.note('targets: (b)/(a) <= 1.05, (c) = (c0)')


def vm_sizes(args):
    sizes = []
    gib = 1
    while gib <= args.max_vm_gib:
        sizes.append(gib)
        gib *= 4
    return sizes


def size_label(gib):
    return '%d GiB' % gib if gib < 1024 else '%d TiB' % (gib // 1024)


def table_scaling(t, res, args):
    g = res.get
    t.section('5. Scaling with VM size, 1 GiB folios unless noted; ns (p50) '
              'per 4 KiB conversion and per query (what query-guest-memfd '
              'computes: state_info, and for the model model_stats + '
              'model_pool)')
    t.header('VM size', 'null convert', 'null query', 'model convert',
             'model query', 'model query 2M')
    cols = (('null-1G', 'convert'), ('null-1G', 'query'),
            ('model-1G', 'convert'), ('model-1G', 'query'),
            ('model-2M', 'query'))
    sizes = vm_sizes(args)
    for gib in sizes:
        t.row(size_label(gib),
              *[fmt_values(g('scaling.%s.%d.%s.p50' % (k, gib, m)))
                for k, m in cols])
    if len(sizes) > 1:
        t.row('%s / 1 GiB' % size_label(sizes[-1]),
              *[fmt_ratio(ratio_values(
                  g('scaling.%s.%d.%s.p50' % (k, sizes[-1], m)),
                  g('scaling.%s.1.%s.p50' % (k, m)))) for k, m in cols])


TABLE_PARTS = (('convert.', table_convert), ('upstream.', table_upstream),
               ('footprint.', table_footprint), ('startup.', table_startup),
               ('scaling.', table_scaling), ('guard.', table_guard))


def build_table(res, args):
    t = Table()
    for prefix, part in TABLE_PARTS:
        if any(k.startswith(prefix) for k in res.figs):
            part(t, res, args)
    return t.render()


def machine():
    cpu = '?'
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    return 'machine: %d CPUs, %s, Linux %s, %.1f GiB RAM' % (
        os.cpu_count(), cpu, platform.release(),
        os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 1024**3)


# The plot, written by hand: no plotting library needed

SVG_COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd']


def svg_panel(x0, y0, w, h, title, xlabel, xticks, series, ylabel):
    """Log-log panel; series: [(label, [(x, y)])]."""
    import math
    pts = [p for _, s in series for p in s if p[1] and p[1] > 0]
    if not pts:
        return []
    ymin = 10 ** math.floor(math.log10(min(p[1] for p in pts)))
    ymax = 10 ** math.ceil(math.log10(max(p[1] for p in pts)))
    xmin = math.log10(xticks[0][0])
    xmax = math.log10(xticks[-1][0])
    ly0, ly1 = math.log10(ymin), math.log10(ymax)

    def px(x):
        return x0 + (math.log10(x) - xmin) / (xmax - xmin) * w

    def py(y):
        return y0 + h - (math.log10(y) - ly0) / (ly1 - ly0) * h

    out = ['<text x="%.1f" y="%.1f" class="t">%s</text>' %
           (x0 + w / 2, y0 - 12, title),
           '<rect x="%d" y="%d" width="%d" height="%d" class="frame"/>' %
           (x0, y0, w, h)]
    e = int(ly0)
    while e <= ly1:
        y = py(10 ** e)
        label = '%d %s' % (10 ** (e % 3), ('ns', 'µs', 'ms', 's')[e // 3])
        out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" '
                   'class="grid"/>' % (x0, y, x0 + w, y))
        out.append('<text x="%d" y="%.1f" class="yl">%s</text>' %
                   (x0 - 6, y + 4, label))
        e += 1
    for x, label in xticks:
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" '
                   'class="grid"/>' % (px(x), y0, px(x), y0 + h))
        out.append('<text x="%.1f" y="%d" class="xl">%s</text>' %
                   (px(x), y0 + h + 16, label))
    out.append('<text x="%.1f" y="%d" class="xl">%s</text>' %
               (x0 + w / 2, y0 + h + 36, xlabel))
    out.append('<text x="%d" y="%.1f" class="ax" transform="rotate(-90 %d '
               '%.1f)">%s</text>' % (x0 - 56, y0 + h / 2, x0 - 56,
                                     y0 + h / 2, ylabel))
    for i, (label, s) in enumerate(series):
        s = [p for p in s if p[1] and p[1] > 0]
        if not s:
            continue
        c = SVG_COLORS[i % len(SVG_COLORS)]
        out.append('<polyline fill="none" stroke="%s" stroke-width="2" '
                   'points="%s"/>' % (c, ' '.join(
                       '%.1f,%.1f' % (px(x), py(y)) for x, y in s)))
        for x, y in s:
            out.append('<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>' %
                       (px(x), py(y), c))
        ly = y0 + h + 62 + 16 * i
        out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" '
                   'stroke-width="2"/>' % (x0 + 8, ly - 4, x0 + 26, ly - 4,
                                           c))
        out.append('<text x="%d" y="%d" class="lg">%s</text>' %
                   (x0 + 30, ly, label))
    return out


def write_svg(res, args, path):
    med = res.median
    ranges = [(4 << 10, '4 KiB'), (2 << 20, '2 MiB'), (1 << 30, '1 GiB')]
    rname = {4 << 10: '4K', 2 << 20: '2M', 1 << 30: '1G'}
    left = [
        ('upstream: attributes + discard', [
            (x, med('upstream.upstream.%s.p50' % rname[x]))
            for x, _ in ranges]),
        ('in-place, model kernel', [
            (x, med('convert.model.%s.p50' % rname[x])) for x, _ in ranges]),
        ('in-place, null kernel (QEMU only)', [
            (x, med('convert.null.%s.p50' % rname[x])) for x, _ in ranges]),
    ]
    sizes = vm_sizes(args)
    xt = [(s, size_label(s)) for s in sizes]
    right = [
        ('query, model, 2 MiB folios', [
            (s, med('scaling.model-2M.%d.query.p50' % s)) for s in sizes]),
        ('query, model, 1 GiB folios', [
            (s, med('scaling.model-1G.%d.query.p50' % s)) for s in sizes]),
        ('4 KiB convert, model', [
            (s, med('scaling.model-1G.%d.convert.p50' % s)) for s in sizes]),
        ('4 KiB convert, null kernel', [
            (s, med('scaling.null-1G.%d.convert.p50' % s)) for s in sizes]),
        ('query, null kernel', [
            (s, med('scaling.null-1G.%d.query.p50' % s)) for s in sizes]),
    ]
    body = []
    body += svg_panel(80, 40, 360, 280, 'Cost per conversion (median)',
                      'range converted', ranges, left, 'time per request')
    if len(sizes) > 1:
        body += svg_panel(560, 40, 360, 280,
                          'Cost against VM size (median)', 'VM size', xt,
                          right, 'time per request / query')
    svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="960" '
           'height="470" viewBox="0 0 960 470" font-family="sans-serif">',
           '<style>.t{font-size:14px;text-anchor:middle;font-weight:bold}'
           '.xl{font-size:11px;text-anchor:middle}'
           '.yl{font-size:11px;text-anchor:end}'
           '.ax{font-size:11px;text-anchor:middle}'
           '.lg{font-size:11px}'
           '.frame{fill:none;stroke:#444}'
           '.grid{stroke:#ddd}</style>',
           '<rect width="960" height="470" fill="white"/>'] + body + \
        ['</svg>']
    with open(path, 'w') as f:
        f.write('\n'.join(svg) + '\n')


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--bench', required=True,
                    help='the guest-memfd-bench executable')
    ap.add_argument('--qemu', help='qemu-system-x86_64 (startup part)')
    ap.add_argument('--repeats', type=int, default=5)
    ap.add_argument('--startup-repeats', type=int, default=5)
    ap.add_argument('--footprint-gib', type=int, default=2)
    ap.add_argument('--max-vm-gib', type=int, default=1024)
    ap.add_argument('--parts', default='convert,upstream,footprint,scaling')
    ap.add_argument('--out', help='directory for results.json and the plot')
    args = ap.parse_args()

    res = Results()
    want_free = max(args.footprint_gib, STARTUP_GIB if args.qemu else 0) \
        * 512
    t0 = time.monotonic()
    with HugePool(want_free) as pool:
        run_core_bench(args.bench, args, res)
        if args.qemu:
            bench_startup(args.qemu, args.startup_repeats, res)
            bench_guard(args.qemu, res)
    if pool.note():
        res.notes.append(pool.note())

    print(machine())
    print('repeats: %d (startup %d); cells are median [min-max] over '
          'repeats; ratios are taken repeat by repeat' %
          (args.repeats, args.startup_repeats))
    print(build_table(res, args))
    for n in res.notes:
        print('note: ' + n)
    print('bench took %.0f s' % (time.monotonic() - t0))
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, 'results.json'), 'w') as f:
            json.dump({'figures': res.figs, 'units': res.units,
                       'notes': res.notes, 'machine': machine()}, f,
                      indent=1)
        write_svg(res, args, os.path.join(args.out, 'guest-memfd-bench.svg'))
        print('results: %s/results.json, plot: %s/guest-memfd-bench.svg' %
              (args.out, args.out))


if __name__ == '__main__':
    main()
