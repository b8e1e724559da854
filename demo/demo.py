#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Host side of `make demo`.

Boots a Linux guest whose 2 GiB of RAM is one guest_memfd file of 1 GiB
pages, lets its /init (demo/init) convert the second GiB between shared and
private through the guest-memfd-psc device, and shows what the memory does
at every step, from query-guest-memfd.

The guest stops at each "DEMO GATE" line on the console and waits for "go",
so the state is sampled while nothing moves.  Every check (the guest's and
ours) is printed; any failure, or a timeout, makes the exit status 1.

--check prints the same checks as TAP for `make check`.
Standard library only.
"""

import argparse
import collections
import json
import os
import queue
import re
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time

GiB = 1 << 30
MiB = 1 << 20
KiB = 1 << 10
PAGE = 4 * KiB
TEST_GPA = 0x40000000       # the guest's second GiB: folio 1 of the file
LIST_GPA = 0x3fff0000       # the PSC list page, kept shared in folio 0
SCATTERED = 64              # pages in step 5 (demo/init)
TAG = 0x5ca1000000000000    # demo/init writes TAG | address
# Kept from Linux: the test folio, and the list page (shared throughout;
# below the end of Linux's RAM, so that /dev/mem's write() reaches it).
CMDLINE = ('console=ttyS0 quiet panic=-1 memmap=1G$0x40000000 '
           'memmap=4K$0x%x' % LIST_GPA)
HUGETLB_1G = '/sys/kernel/mm/hugepages/hugepages-1048576kB'


class DemoError(Exception):
    pass


# --- output: a story for people, TAP for make check ------------------------

class Report:
    def __init__(self, tap):
        self.tap = tap
        self.n = 0
        self.failed = 0

    def say(self, text=''):
        """Narration; a TAP comment in check mode."""
        for line in text.split('\n'):
            print(('# ' + line).rstrip() if self.tap else line, flush=True)

    def check(self, ok, what, detail='', story=None):
        """One check: a TAP line, or for people @story (default @what)
        marked ok or FAIL, with @detail when it failed."""
        self.n += 1
        if not ok:
            self.failed += 1
        if self.tap:
            if story is not None:
                self.say(story)
            print('%s %d - %s' % ('ok' if ok else 'not ok', self.n, what),
                  flush=True)
            if detail and not ok:
                self.say('  ' + detail)
        elif story is not None:
            print(story + ('  ok' if ok else '  FAIL: ' + detail), flush=True)
        else:
            print('%s %s%s' % ('  ok  ' if ok else '  FAIL', what,
                               '' if ok or not detail else ': ' + detail),
                  flush=True)
        return ok

    def skip(self, why):
        self.n += 1
        if self.tap:
            print('ok %d - demo # SKIP %s' % (self.n, why), flush=True)
        else:
            print('demo skipped: ' + why, flush=True)


def size_str(n):
    """Exact and short: "1 GiB", "1 GiB + 4 KiB", "1 GiB - 2 MiB"."""
    def exact(n):
        for unit, name in ((GiB, 'GiB'), (MiB, 'MiB'), (KiB, 'KiB')):
            if n and n % unit == 0:
                return '%d %s' % (n // unit, name)
        return '%d B' % n
    g = round(n / GiB) * GiB
    if g in (0, n) or abs(n - g) >= 256 * MiB:
        return exact(n)
    return '%s %s %s' % (exact(g), '+' if n > g else '-', exact(abs(n - g)))


# --- QMP: one JSON object per line over a unix socket ----------------------

class Qmp:
    def __init__(self, path, proc, deadline):
        # QEMU creates the socket while it starts; wait for it, but not for
        # a QEMU that already failed.
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if proc.poll() is not None:
                    raise DemoError('QEMU exited with status %d at start'
                                    % proc.returncode)
                if time.monotonic() > deadline:
                    raise DemoError('QMP socket %s never came up' % path)
                time.sleep(0.1)
        self.sock.settimeout(30)
        self.f = self.sock.makefile('rw')
        self._read()                        # the greeting
        self.cmd('qmp_capabilities')

    def _read(self):
        line = self.f.readline()
        if not line:
            raise DemoError('QEMU closed the QMP connection')
        return json.loads(line)

    def cmd(self, name, **args):
        self.f.write(json.dumps({'execute': name, 'arguments': args}) + '\n')
        self.f.flush()
        while True:
            msg = self._read()
            if 'return' in msg:
                return msg['return']
            if 'error' in msg:
                raise DemoError('%s: %s' % (name, msg['error']['desc']))
            # anything else is an event; none matters here

    def close(self):
        self.sock.close()


# --- the guest's console ---------------------------------------------------

class Console:
    """Serial console on QEMU's stdin/stdout; a thread turns its DEMO lines
    into events so that waiting can time out."""

    def __init__(self, proc, verbose):
        self.proc = proc
        self.events = queue.Queue()
        self.tail = collections.deque(maxlen=25)
        self.verbose = verbose
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        for raw in self.proc.stdout:
            line = raw.decode('utf-8', 'replace').rstrip('\r\n')
            self.tail.append(line)
            if self.verbose:
                print('    | ' + line, file=sys.stderr, flush=True)
            m = re.search(r'DEMO (\w+) ?(.*)$', line)
            if m:
                self.events.put((m.group(1), m.group(2)))
            elif 'Kernel panic' in line:
                self.events.put(('PANIC', line))
        self.events.put(('EOF', ''))

    def next(self, deadline, waiting_for, report):
        """Next DEMO event; says what we wait for every 10 s of silence."""
        start = time.monotonic()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DemoError('timeout (%s); %s' % (waiting_for,
                                                      self.last_words()))
            try:
                return self.events.get(timeout=min(left, 10))
            except queue.Empty:
                report.say('  ... %s (%d s)' % (waiting_for,
                                                time.monotonic() - start))

    def last_words(self):
        if not any(self.tail):
            return 'the guest\'s console stayed silent'
        return 'its console ended with:\n' + '\n'.join(self.tail)

    def go(self):
        self.proc.stdin.write(b'go\n')
        self.proc.stdin.flush()


# --- memory state ----------------------------------------------------------

def sample(qmp):
    [info] = [i for i in qmp.cmd('query-guest-memfd') if i['id'] == 'mem0']
    return info


ROW = '  %-11s %15s %15s %5s %6s %10s %10s %14s'
HEAD = ('  split: folios broken into 4 KiB pages because some are shared;'
        ' merged: whole\n  1 GiB folios; to-shared/to-private: conversions'
        ' so far; pool: 1 GiB pages\n\n' +
        ROW % ('', 'shared', 'private', 'split', 'merged', 'to-shared',
               'to-private', 'pool used/free'))


def row(label, s):
    pool = s.get('pool')
    return ROW % (label, size_str(s['shared']), size_str(s['private']),
                  s['folios-split'], s['folios-merged'], s['to-shared'],
                  s['to-private'],
                  '%d/%d' % (pool['in-use'], pool['free']) if pool else '-')


# What each gate must show: bytes shared, folios split and merged, and the
# conversions since the previous gate (one per PSC list, or per entry when
# entries are not contiguous).
def expected(step, phase):
    one_folio_private = (GiB, 1, 1)
    table = {
        (1, 'after'): one_folio_private + (0, 4),
        (2, 'shared'): (GiB + PAGE, 2, 0, 1, 0),
        (2, 'after'): one_folio_private + (0, 1),
        (3, 'shared'): (GiB + 2 * MiB, 2, 0, 1, 0),
        (3, 'after'): one_folio_private + (0, 1),
        (4, 'shared'): (2 * GiB, 2, 0, 4, 0),
        (4, 'after'): one_folio_private + (0, 4),
        (5, 'shared'): (GiB + SCATTERED * PAGE, 2, 0, SCATTERED, 0),
        (5, 'after'): one_folio_private + (0, SCATTERED),
        (6, 'after'): (2 * GiB, 2, 0, 4, 0),
    }
    return table.get((step, phase))


def check_state(report, label, prev, s, want):
    """The sample's row, checked against what the step must have done."""
    shared, split, merged, d_sh, d_pr = want
    got = (s['shared'], s['folios-split'], s['folios-merged'],
           s['to-shared'] - prev['to-shared'],
           s['to-private'] - prev['to-private'])
    ok = (got == want and s['failed'] == 0 and s['folios-waiting'] == 0 and
          s['shared'] + s['private'] == s['size'])
    report.check(ok, '%s: %s shared, %d split + %d merged folios, +%d'
                 ' to-shared, +%d to-private' % ((label, size_str(shared)) +
                                                 want[1:]),
                 'want %s shared, %d split, %d merged, +%d, +%d, 0 failed,'
                 ' 0 waiting' % ((size_str(shared),) + want[1:]),
                 story=row(label.split()[-1], s))


def host_read(qmp, addr):
    """One 64-bit word of guest memory as QEMU reads it (HMP xp, which,
    unlike pmemsave, reports a refused access), or None if refused."""
    out = qmp.cmd('human-monitor-command', **{'command-line':
                                              'xp /1gx %#x' % addr})
    m = re.search(r':\s+(0x[0-9a-f]+)', out)
    return int(m.group(1), 16) if m else None


def gate_words(info):
    """The words the guest wrote before this gate ("words= gpa= stride=")."""
    kv = dict(f.split('=', 1) for f in info.split() if '=' in f)
    if 'words' not in kv:
        return []
    words, gpa, stride = (int(kv[k], 0) for k in ('words', 'gpa', 'stride'))
    return list(range(gpa, gpa + words * stride, stride))


def host_reads_shared(report, qmp, addrs):
    """QEMU reads the guest's words in shared pages: one copy of the memory,
    converted in place."""
    bad = sum(host_read(qmp, a) != TAG | a for a in addrs)
    report.check(bad == 0, 'host: QEMU reads the same %d words (one copy of'
                 ' the memory)' % len(addrs), '%d differ' % bad)


def host_reads_private(report, qmp, addrs):
    """Once private, the same words are out of QEMU's reach."""
    read = sum(host_read(qmp, a) is not None for a in addrs)
    report.check(read == 0, 'host: QEMU can no longer read them (private)',
                 '%d of %d still readable' % (read, len(addrs)))


# --- QEMU --------------------------------------------------------------------

def kvm_lacks(qemu):
    """Why this host has no usable KVM, or None: the tests' host probe
    (tests/unit/guest-memfd-host-probe), which creates a VM to know."""
    probe = os.path.join(os.path.dirname(qemu), 'tests', 'unit',
                         'guest-memfd-host-probe')
    try:
        r = subprocess.run([probe, '--needs', 'kvm'], capture_output=True,
                           text=True, timeout=30)
    except OSError as e:
        return 'cannot run %s: %s' % (probe, e.strerror)
    return None if r.returncode == 0 else r.stdout.strip()


KVM_PROBE_S = 20


def kvm_boots(args):
    """Does Linux start under this host's KVM?  Some hosts offer a /dev/kvm
    whose vCPUs lack what Debian's kernel needs (seen: a paravirtual KVM
    without SSE3, CPUID.01H:ECX.pni): the console then stays silent.
    Returns None once the kernel prints its banner, else why not."""
    cmd = [args.qemu, '-accel', 'kvm', '-machine', 'q35', '-m', '256M',
           '-nodefaults', '-display', 'none', '-no-reboot',
           '-serial', 'stdio', '-kernel', args.kernel, '-initrd', args.initrd,
           '-append', 'console=ttyS0 earlyprintk=ttyS0 panic=-1']
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = b''
    deadline = time.monotonic() + KVM_PROBE_S
    try:
        while b'Linux version' not in out and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                out += chunk
    finally:
        proc.kill()
        _, err = proc.communicate()
    if b'Linux version' in out:
        return None
    warning = [l for l in err.decode(errors='replace').splitlines()
               if l.strip()]
    return ('Linux did not start within %d s under this host\'s KVM%s;'
            ' --accel kvm to insist' %
            (KVM_PROBE_S, ', QEMU said "%s"' % warning[0].split(': ', 1)[-1]
             if warning else ''))


def probe_kernel(qemu, accel):
    """Ask QEMU whether the host kernel can give 1 GiB guest_memfd pages;
    returns None if it can, else QEMU's reason."""
    try:
        r = subprocess.run([qemu, '-machine', 'none', '-accel', accel,
                            '-nodefaults', '-display', 'none', '-S',
                            '-monitor', 'none', '-serial', 'none', '-object',
                            'memory-backend-guest-memfd,id=p,size=1G,'
                            'pagesize=1G'],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=3)
    except subprocess.TimeoutExpired:
        return None                         # it started: the kernel can
    return r.stderr.strip().split('\n')[0] or 'exit status %d' % r.returncode


def host_pool():
    """The host's 1 GiB hugetlb pool, or None."""
    try:
        return {k: int(open(os.path.join(HUGETLB_1G, k)).read())
                for k in ('nr_hugepages', 'free_hugepages', 'resv_hugepages')}
    except OSError:
        return None


def start_qemu(args, accel, model, tmp):
    qmp_path = os.path.join(tmp, 'qmp')
    backend = ('memory-backend-guest-memfd,id=mem0,size=2G,pagesize=1G' +
               (',kernel-model=on' if model else ''))
    cmd = [args.qemu, '-accel', accel, '-machine', 'q35,memory-backend=mem0',
           '-m', '2G', '-smp', '1', '-object', backend,
           '-device', 'guest-memfd-psc', '-nodefaults', '-no-user-config',
           '-display', 'none', '-no-reboot', '-serial', 'stdio',
           '-qmp', 'unix:%s,server=on,wait=off' % qmp_path,
           '-kernel', args.kernel, '-initrd', args.initrd,
           '-append', CMDLINE]
    errlog = open(os.path.join(tmp, 'qemu.err'), 'w+')
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=errlog)
    return proc, qmp_path, errlog


# --- the run -------------------------------------------------------------------

STEPS = {
    1: 'make the whole test folio private',
    2: 'one 4 KiB page: private -> shared -> private',
    3: 'a 2 MiB range (one 2M entry): private -> shared -> private',
    4: 'the whole 1 GiB folio: private -> shared -> private',
    5: '%d scattered 4 KiB pages in one list: private -> shared -> private'
       % SCATTERED,
    6: 'give the folio back shared, as at boot',
}


def run_steps(report, con, qmp, deadline):
    """Follow the guest through its gates until DONE; returns the first and
    the last sample, and whether the guest went through every step."""
    first = prev = None
    step, phase = 0, ''
    words = []
    guest_checks = guest_failed = 0
    waiting = 'booting'
    boot = time.monotonic()
    while True:
        kind, rest = con.next(deadline, waiting, report)
        if kind == 'READY':
            report.say('  Linux up in %.0f s; /init found the PSC device at %s'
                       % (time.monotonic() - boot, rest))
        elif kind == 'CHECK':
            ok, _, what = rest.partition(' ')
            guest_checks += 1
            guest_failed += ok != 'ok'
            report.check(ok == 'ok', 'guest: ' + what)
        elif kind == 'GATE':
            f = rest.split(' ', 2) + ['']
            step, phase, info = int(f[0]), f[1], f[2]
            s = sample(qmp)
            if step == 0:
                first = s
                report.say('\n' + HEAD)
                report.check(s['shared'] == 2 * GiB and s['private'] == 0,
                             'at boot: all 2 GiB shared (non-confidential'
                             ' guest)', 'want 2 GiB shared',
                             story=row('at boot', s))
            else:
                if phase == 'before':
                    report.say('\n%d. %s' % (step, STEPS[step]))
                want = expected(step, phase)
                if want:
                    check_state(report, 'step %d %s' % (step, phase), prev, s,
                                want)
                else:
                    report.say(row(phase, s))
                if phase == 'shared':
                    words = gate_words(info)
                    host_reads_shared(report, qmp, words)
                elif phase == 'after' and words:
                    host_reads_private(report, qmp, words)
                    words = []
            prev = s
            waiting = 'step %d (%s)' % (step, STEPS.get(step, 'start'))
            con.go()
        elif kind == 'DONE':
            m = re.match(r'checks=(\d+) failed=(\d+)', rest)
            report.check(bool(m) and int(m.group(2)) == 0 and
                         int(m.group(1)) == guest_checks,
                         'guest: %d checks, %d failed' % (guest_checks,
                                                          guest_failed),
                         'the guest said: ' + rest)
            return first, sample(qmp), (step, phase) == (6, 'after')
        elif kind in ('PANIC', 'EOF'):
            raise DemoError('the guest died (%s); %s'
                            % (rest or 'QEMU exited', con.last_words()))


def finish(report, proc, con, qmp, samples, pool_before, deadline):
    """Show the pool with everything converted back, power off, and show the
    pages leaving with the file."""
    first, last, complete = samples
    pool = last.get('pool')
    report.say('\nend: the guest %s and powers off' %
               ('has converted everything back' if complete else 'gave up'))
    report.say(row('before quit', last))
    if pool and first:
        report.check(pool['in-use'] == first['pool']['in-use'] and
                     pool['free'] + pool['in-use'] == pool['total'] and
                     pool['reserved'] == first['pool']['reserved'],
                     'pool: %d of %d 1 GiB pages in use, as at boot (%d free)'
                     % (pool['in-use'], pool['total'], pool['free']))
    # The guest powers itself off once it has been told to go on.
    qmp.close()
    con.go()
    try:
        rc = proc.wait(max(1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
    report.check(rc == 0, 'guest powered off, QEMU exited',
                 'exit status %d' % rc)
    after = host_pool()
    if pool and not pool['real']:
        report.say('  the pool was simulated inside QEMU (this host has no 1 GiB'
                   ' hugetlb pool), so it\n  ended with QEMU: no host'
                   ' counters can show its %d pages coming back'
                   % pool['in-use'])
    elif pool_before and after:
        report.check(after == pool_before,
                     'host 1 GiB hugetlb pool back as before: %d free of %d'
                     % (after['free_hugepages'], after['nr_hugepages']),
                     'before %s, after %s' % (pool_before, after))


def find_kernel(args):
    """The guest kernel; returns a reason to skip, or None."""
    if not args.kernel:
        return 'no guest kernel: give --kernel (demo/run fetches one)'
    if not os.access(args.kernel, os.R_OK):
        return '%s is not readable' % args.kernel
    return None


def kernel_name(path):
    """Debian's Linux x.y (what tests/lab/fetch-kernel wrote beside it), or
    the file's name."""
    try:
        with open(os.path.join(os.path.dirname(path), 'VERSION')) as f:
            return 'Debian\'s Linux ' + f.read().strip()
    except OSError:
        return os.path.basename(path)


def introduce(report, args, accel, no_kernel, no_kvm):
    report.say('make demo: a Linux guest converts its memory between shared'
               ' and private, in place\n')
    report.say('  QEMU    %s, %s' % (os.path.relpath(args.qemu),
                                    'KVM' if accel == 'kvm' else
                                    'TCG\n          (%s)' % no_kvm))
    report.say('  guest   %s + busybox initramfs, 1 CPU, 2 GiB of RAM from\n'
               '          memory-backend-guest-memfd size=2G pagesize=1G%s'
               % (kernel_name(args.kernel),
                  ' kernel-model=on' if no_kernel else ''))
    if no_kernel:
        report.say('  model   the host kernel lacks hugetlb guest_memfd, so'
                   ' QEMU\'s user-space model of\n          the 1 GiB'
                   ' guest_memfd kernel stands in for it (without it QEMU'
                   ' says\n          "%s")'
                   % no_kernel.split(': ', 1)[-1].split(';')[0])
    report.say('  test    folio 1, guest-physical %#x-%#x, is kept from Linux'
               ' with memmap=;\n          the PSC list page %#x in folio 0'
               ' stays shared' % (TEST_GPA, TEST_GPA + GiB - 1, LIST_GPA))


def qemu_state(qmp):
    """Where QEMU and its vCPU were when the guest fell silent: its run
    state and instruction pointer, for a timeout that is not understood."""
    try:
        status = qmp.cmd('query-status')['status']
        regs = qmp.cmd('human-monitor-command',
                       **{'command-line': 'info registers'})
    except (DemoError, OSError, ValueError) as e:
        return 'QEMU\'s state: unknown (%s)' % e
    rip = re.search(r'RIP=(\S+)', regs)
    return 'QEMU\'s state: %s, the vCPU at RIP=%s' % (
        status, rip.group(1) if rip else '?')


def run(report, args, deadline):
    """Boot the guest and follow it to the end; failures become checks."""
    accel, no_kvm = args.accel, 'asked for with --accel tcg'
    if accel == 'auto':
        no_kvm = kvm_lacks(args.qemu) or kvm_boots(args)
        accel = 'tcg' if no_kvm else 'kvm'
    no_kernel = probe_kernel(args.qemu, accel)
    introduce(report, args, accel, no_kernel, no_kvm)
    pool_before = host_pool()
    with tempfile.TemporaryDirectory(prefix='gmem-demo-') as tmp:
        proc, qmp_path, errlog = start_qemu(args, accel, bool(no_kernel), tmp)
        qmp = None
        try:
            con = Console(proc, args.verbose)
            qmp = Qmp(qmp_path, proc, deadline)
            pool = sample(qmp).get('pool')
            if pool:
                report.say('  pool    %s: %d pages of 1 GiB' % (
                    'the host\'s hugetlb pool' if pool['real'] else
                    'simulated (this host has no 1 GiB hugetlb pool)',
                    pool['total']))
            report.say('\nbooting Linux...')
            samples = run_steps(report, con, qmp, deadline)
            finish(report, proc, con, qmp, samples, pool_before, deadline)
        except (DemoError, OSError, ValueError) as e:
            report.check(False, 'demo ran to the end', str(e))
            if 'timeout' in str(e) and qmp:
                report.say(qemu_state(qmp))
            errlog.seek(0)
            err = errlog.read().strip()
            if err:
                report.say('QEMU said: ' + err)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def main():
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--check', action='store_true', help='print TAP')
    ap.add_argument('--qemu', default=os.path.join(
        top, 'build/qemu/qemu-system-x86_64'))
    ap.add_argument('--kernel', help='the guest kernel (demo/run gives the'
                    ' lab\'s, tests/lab/fetch-kernel)')
    ap.add_argument('--initrd', default=os.path.join(
        top, 'build/demo/initramfs.cpio.gz'))
    ap.add_argument('--skip', metavar='REASON',
                    help='report only a skip, for REASON')
    ap.add_argument('--accel', choices=('auto', 'kvm', 'tcg'),
                    default='auto', help='auto (default): KVM if Linux'
                    ' starts under it within %d s, else TCG' % KVM_PROBE_S)
    ap.add_argument('--timeout', type=float, default=170,
                    help='seconds for the whole run (default 170)')
    ap.add_argument('--verbose', action='store_true',
                    help='echo the guest console to stderr')
    args = ap.parse_args()
    report = Report(args.check)
    start = time.monotonic()

    why = args.skip or find_kernel(args)
    if why:
        report.skip(why)
    elif not os.access(args.qemu, os.X_OK):
        report.check(False, 'QEMU is built', '%s is missing: run make'
                     % args.qemu)
    else:
        run(report, args, start + args.timeout)

    took = time.monotonic() - start
    if args.check:
        print('1..%d' % report.n)
    elif report.failed:
        report.say('\nFAILED: %d of %d checks (%.0f s)' % (report.failed,
                                                           report.n, took))
    elif not why:
        report.say('\nall %d checks passed in %.0f s' % (report.n, took))
    return 1 if report.failed else 0


if __name__ == '__main__':
    sys.exit(main())
