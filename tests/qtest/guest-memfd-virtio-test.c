/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * A virtio device on in-place guest_memfd RAM whose guest converts the
 * pages the device uses to private: the descriptor table, the available
 * ring, a data buffer, the status byte, the used ring, before a kick and
 * while a request is in flight.  QEMU must stay up and never touch a
 * private page (under qtest the model makes private pages inaccessible in
 * QEMU's mapping, so an unguarded access kills QEMU and fails the test).
 * A request whose data buffer is private fails with the device's own
 * status and the queue goes on; where the device cannot go on (a ring, the
 * status byte) it breaks as virtio defines (NEEDS_RESET), and converting
 * back and a reset let it work again.
 *
 * The device is virtio-blk on a null-co disk that reads zeroes, with a
 * one-second latency for the in-flight cases, and virtio-net's transmit
 * queue on a user-mode network that takes what it is sent.  A vhost-user
 * device, whose back end would map the RAM itself, is refused.
 */

#include "qemu/osdep.h"
#include "qemu/units.h"
#include "libqtest.h"
#include "libqos/libqos-malloc.h"
#include "libqos/malloc-pc.h"
#include "libqos/pci-pc.h"
#include "libqos/virtio-pci.h"
#include "libqos/virtio.h"
#include "standard-headers/linux/virtio_blk.h"
#include "standard-headers/linux/virtio_config.h"
#include "standard-headers/linux/virtio_ring.h"
#include "guest-memfd-qtest.h"

#define PAGE 4096
#define TIMEOUT_US (10 * 1000 * 1000)

/*
 * One device and its queue: virtio-blk's request queue, or virtio-net's
 * transmit queue (net, with its receive queue set up beside it).
 */
typedef struct Blk {
    QTestState *qts;
    QGuestAllocator alloc;
    QPCIBus *bus;
    QVirtioPCIDevice *dev;
    bool net;
    QVirtQueue *vq, *rx;
    /* One read request: header, 512-byte data buffer, status byte. */
    uint64_t hdr, data, status;
} Blk;

static void blk_setup_queue(Blk *b)
{
    QVirtioDevice *vdev = &b->dev->vdev;
    uint64_t features;

    qvirtio_start_device(vdev);
    features = qvirtio_get_features(vdev) &
               ~(QVIRTIO_F_BAD_FEATURE | (1ULL << VIRTIO_RING_F_INDIRECT_DESC) |
                 (1ULL << VIRTIO_RING_F_EVENT_IDX) |
                 (1ULL << VIRTIO_BLK_F_SCSI));
    qvirtio_set_features(vdev, features);
    if (b->net) {
        b->rx = qvirtqueue_setup(vdev, &b->alloc, 0);
    }
    b->vq = qvirtqueue_setup(vdev, &b->alloc, b->net ? 1 : 0);
    qvirtio_set_driver_ok(vdev);
}

static void blk_start_device(Blk *b, bool net, uint64_t latency_ns)
{
    g_autofree char *device = net ?
        g_strdup("-netdev user,id=n0,restrict=on"
                 " -device virtio-net-pci,netdev=n0,addr=04.0") :
        g_strdup_printf("-blockdev driver=null-co,node-name=disk,"
                        "size=1048576,read-zeroes=on,latency-ns=%" PRIu64
                        " -device virtio-blk-pci,drive=disk,addr=04.0",
                        latency_ns);

    b->net = net;
    b->rx = NULL;
    b->qts = qtest_initf("-machine q35,memory-backend=mem0 -m 64M"
                         " -object memory-backend-guest-memfd,id=mem0,"
                         "size=64M,kernel-model=on %s", device);
    pc_alloc_init(&b->alloc, b->qts, ALLOC_NO_FLAGS);
    b->bus = qpci_new_pc(b->qts, &b->alloc);
    b->dev = virtio_pci_new(b->bus, &(QPCIAddress) {
        .devfn = QPCI_DEVFN(4, 0) });
    g_assert(b->dev);
    qvirtio_pci_device_enable(b->dev);
    blk_setup_queue(b);
    /* Each on a page of its own, so that each can be made private. */
    b->hdr = guest_alloc(&b->alloc, PAGE);
    b->data = guest_alloc(&b->alloc, PAGE);
    b->status = guest_alloc(&b->alloc, PAGE);
    g_assert_cmphex(b->vq->desc / PAGE, !=, b->vq->avail / PAGE);
    g_assert_cmphex(b->vq->avail / PAGE, !=, b->vq->used / PAGE);
}

static void blk_start(Blk *b, uint64_t latency_ns)
{
    blk_start_device(b, false, latency_ns);
}

static void blk_stop(Blk *b)
{
    if (b->rx) {
        qvirtqueue_cleanup(b->dev->vdev.bus, b->rx, &b->alloc);
    }
    qvirtqueue_cleanup(b->dev->vdev.bus, b->vq, &b->alloc);
    qos_object_destroy(&b->dev->obj);
    qpci_free_pc(b->bus);
    alloc_destroy(&b->alloc);
    qtest_quit(b->qts);
}

/* Queue a read of sector 0 and kick; returns its head descriptor. */
static uint32_t blk_read(Blk *b)
{
    uint32_t head;

    qtest_writel(b->qts, b->hdr, VIRTIO_BLK_T_IN);
    qtest_writel(b->qts, b->hdr + 4, 0);
    qtest_writeq(b->qts, b->hdr + 8, 0);
    qtest_memset(b->qts, b->data, 0xaa, 512);
    qtest_writeb(b->qts, b->status, 0xff);
    head = qvirtqueue_add(b->qts, b->vq, b->hdr, 16, false, true);
    qvirtqueue_add(b->qts, b->vq, b->data, 512, true, true);
    qvirtqueue_add(b->qts, b->vq, b->status, 1, true, false);
    qvirtqueue_kick(b->qts, &b->dev->vdev, b->vq, head);
    return head;
}

/* The request completed: status OK, the data buffer holds the zeroes. */
static void blk_completed(Blk *b, uint32_t head)
{
    qvirtio_wait_used_elem(b->qts, &b->dev->vdev, b->vq, head, NULL,
                           TIMEOUT_US);
    g_assert_cmpuint(qtest_readb(b->qts, b->status), ==, VIRTIO_BLK_S_OK);
    g_assert_cmphex(qtest_readq(b->qts, b->data), ==, 0);
    g_assert_cmphex(qtest_readq(b->qts, b->data + 504), ==, 0);
}

static bool convert(Blk *b, uint64_t gpa, bool private)
{
    QDict *resp = qtest_qmp(b->qts, "{'execute': 'x-guest-memfd-convert',"
                            " 'arguments': {'gpa': %" PRIu64 ", 'size': %d,"
                            " 'private': %i}}", gpa & ~(uint64_t)(PAGE - 1),
                            PAGE, private);
    bool ok = !qdict_haskey(resp, "error");

    qobject_unref(resp);
    return ok;
}

static uint8_t blk_status(Blk *b)
{
    return b->dev->vdev.bus->get_status(&b->dev->vdev);
}

/* QEMU still answers, and the device is where the test expects it. */
static void assert_alive(Blk *b)
{
    QDict *resp = qtest_qmp(b->qts, "{'execute': 'query-status'}");

    g_assert(qdict_haskey(resp, "return"));
    qobject_unref(resp);
}

/* Give the device time to (not) act on a kick. */
static void settle(Blk *b)
{
    for (int i = 0; i < 20; i++) {
        assert_alive(b);
        g_usleep(5000);
    }
}

/* A fresh driver after the device asked for a reset. */
static void blk_reset(Blk *b)
{
    if (b->rx) {
        qvirtqueue_cleanup(b->dev->vdev.bus, b->rx, &b->alloc);
    }
    qvirtqueue_cleanup(b->dev->vdev.bus, b->vq, &b->alloc);
    blk_setup_queue(b);
}

static void test_works(void)
{
    Blk b;

    blk_start(&b, 0);
    blk_completed(&b, blk_read(&b));
    blk_completed(&b, blk_read(&b));
    blk_stop(&b);
}

/*
 * A private page the device must read (descriptor table) or write (the
 * status byte) at the kick: the device reports NEEDS_RESET; converted back
 * and reset, it works.
 */
static void kick_with_private(uint64_t (*page)(Blk *b))
{
    Blk b;

    blk_start(&b, 0);
    blk_completed(&b, blk_read(&b));

    /* Queue the request, make the page private, then kick. */
    g_assert_true(convert(&b, page(&b), true));
    blk_read(&b);
    settle(&b);
    g_assert_cmphex(blk_status(&b) & VIRTIO_CONFIG_S_NEEDS_RESET, ==,
                    VIRTIO_CONFIG_S_NEEDS_RESET);

    g_assert_true(convert(&b, page(&b), false));
    blk_reset(&b);
    blk_completed(&b, blk_read(&b));
    blk_stop(&b);
}

static uint64_t desc_page(Blk *b)
{
    return b->vq->desc;
}

static uint64_t status_page(Blk *b)
{
    return b->status;
}

static void test_private_desc(void)
{
    kick_with_private(desc_page);
}

static void test_private_status(void)
{
    kick_with_private(status_page);
}

/*
 * A data buffer private at the kick, its status byte shared: that request
 * fails with virtio-blk's own status (IOERR) and the queue goes on, with
 * no reset.  Nothing touched the private page: shared again, it holds what
 * it held (the null disk would have written zeroes, the test's own write
 * of the request was refused).
 */
static void test_private_data(void)
{
    Blk b;
    uint32_t head;

    blk_start(&b, 0);
    blk_completed(&b, blk_read(&b));

    qtest_memset(b.qts, b.data, 0x5a, PAGE);
    g_assert_true(convert(&b, b.data, true));
    head = blk_read(&b);
    qvirtio_wait_used_elem(b.qts, &b.dev->vdev, b.vq, head, NULL,
                           TIMEOUT_US);
    g_assert_cmpuint(qtest_readb(b.qts, b.status), ==, VIRTIO_BLK_S_IOERR);
    g_assert_cmphex(blk_status(&b) & VIRTIO_CONFIG_S_NEEDS_RESET, ==, 0);

    g_assert_true(convert(&b, b.data, false));
    g_assert_cmphex(qtest_readq(b.qts, b.data), ==, 0x5a5a5a5a5a5a5a5aULL);
    g_assert_cmphex(qtest_readq(b.qts, b.data + PAGE - 8), ==,
                    0x5a5a5a5a5a5a5a5aULL);
    blk_completed(&b, blk_read(&b));
    blk_stop(&b);
}

/* The device broke as virtio defines: NEEDS_RESET, QEMU still up. */
static void assert_needs_reset(Blk *b)
{
    assert_alive(b);
    gmem_wait_for(blk_status(b) & VIRTIO_CONFIG_S_NEEDS_RESET,
                  "the device's NEEDS_RESET");
}

/*
 * The available ring private: the device cannot see the request, and
 * says so (NEEDS_RESET) instead of waiting; reset with the ring shared
 * again, it works.
 */
static void test_private_avail(void)
{
    Blk b;

    blk_start(&b, 0);
    g_assert_true(convert(&b, b.vq->avail, true));
    blk_read(&b);                 /* the test's own avail writes fail too */
    assert_needs_reset(&b);
    g_assert_true(convert(&b, b.vq->avail, false));
    blk_reset(&b);
    blk_completed(&b, blk_read(&b));
    blk_stop(&b);
}

/*
 * The used ring private: the device cannot report the completion, and
 * says so (NEEDS_RESET); after a reset it works again.
 */
static void test_private_used(void)
{
    Blk b;

    blk_start(&b, 0);
    g_assert_true(convert(&b, b.vq->used, true));
    blk_read(&b);
    assert_needs_reset(&b);
    g_assert_true(convert(&b, b.vq->used, false));
    blk_reset(&b);
    blk_completed(&b, blk_read(&b));
    blk_stop(&b);
}

/*
 * While the request is in flight (one second on the disk) its data buffer
 * is mapped: it cannot become private, as a page the kernel sees
 * referenced could not.  Once the request completes, it can.
 */
static void test_in_flight(void)
{
    Blk b;
    uint32_t head;
    QDict *resp;

    blk_start(&b, 1000 * 1000 * 1000);
    head = blk_read(&b);
    resp = qtest_qmp(b.qts, "{'execute': 'x-guest-memfd-convert',"
                     " 'arguments': {'gpa': %" PRIu64 ", 'size': %d,"
                     " 'private': true}}", b.data, PAGE);
    g_assert(qdict_haskey(resp, "error"));
    g_assert(strstr(qdict_get_str(qdict_get_qdict(resp, "error"), "desc"),
                    "still referenced"));
    qobject_unref(resp);
    blk_completed(&b, head);
    g_assert_true(convert(&b, b.data, true));
    g_assert_true(convert(&b, b.data, false));
    blk_stop(&b);
}

/*
 * The used ring made private while a request is in flight (rings are not
 * mapped, so it converts): the request completes (its status written)
 * but cannot say so, and the device reports NEEDS_RESET; after a reset it
 * works.
 */
static void test_in_flight_used(void)
{
    Blk b;

    blk_start(&b, 300 * 1000 * 1000);
    blk_read(&b);
    g_assert_true(convert(&b, b.vq->used, true));
    assert_needs_reset(&b);
    g_assert_cmpuint(qtest_readb(b.qts, b.status), ==, VIRTIO_BLK_S_OK);
    g_assert_true(convert(&b, b.vq->used, false));
    blk_reset(&b);
    blk_completed(&b, blk_read(&b));
    blk_stop(&b);
}

/*
 * The descriptor table and the available ring made private while a
 * request is in flight (rings are not mapped, so they convert): the device
 * read both at the kick, so the request completes; shared again, the next
 * one does too.
 */
static void test_in_flight_rings(void)
{
    Blk b;
    uint32_t head;

    blk_start(&b, 300 * 1000 * 1000);
    head = blk_read(&b);
    g_assert_true(convert(&b, b.vq->desc, true));
    g_assert_true(convert(&b, b.vq->avail, true));
    blk_completed(&b, head);
    g_assert_cmphex(blk_status(&b) & VIRTIO_CONFIG_S_NEEDS_RESET, ==, 0);
    g_assert_true(convert(&b, b.vq->desc, false));
    g_assert_true(convert(&b, b.vq->avail, false));
    blk_completed(&b, blk_read(&b));
    blk_stop(&b);
}

/*
 * virtio-net: send one frame (the 12-byte virtio-net header, then 60
 * bytes of broadcast Ethernet) on the transmit queue and kick; user-mode
 * networking takes it, and the device reports it sent.
 */
static uint32_t net_send(Blk *b)
{
    uint32_t head;

    qtest_memset(b->qts, b->data, 0, 12);
    qtest_memset(b->qts, b->data + 12, 0xff, 60);
    head = qvirtqueue_add(b->qts, b->vq, b->data, 12 + 60, false, false);
    qvirtqueue_kick(b->qts, &b->dev->vdev, b->vq, head);
    return head;
}

static void net_sent(Blk *b, uint32_t head)
{
    qvirtio_wait_used_elem(b->qts, &b->dev->vdev, b->vq, head, NULL,
                           TIMEOUT_US);
}

/*
 * virtio-net's transmit queue with its descriptor table, available ring,
 * used ring or the packet's buffer private: the device cannot send, or
 * cannot say it sent, and reports NEEDS_RESET (a transmit request has no
 * status to fail it with); shared again and reset, it sends.
 */
static void test_net_private(const void *opaque)
{
    const char *part = opaque;
    Blk b;
    uint64_t page;

    blk_start_device(&b, true, 0);
    net_sent(&b, net_send(&b));
    page = !strcmp(part, "desc") ? b.vq->desc :
           !strcmp(part, "avail") ? b.vq->avail :
           !strcmp(part, "used") ? b.vq->used : b.data;
    g_assert_true(convert(&b, page, true));
    net_send(&b);
    assert_needs_reset(&b);
    g_assert_true(convert(&b, page, false));
    blk_reset(&b);
    net_sent(&b, net_send(&b));
    blk_stop(&b);
}

/*
 * vhost-user, with a real back end: Debian's qemu-storage-daemon serving
 * vhost-user-blk on a null disk.  On ordinary shared RAM the device
 * connects to it and realizes; on in-place guest_memfd RAM, which the back
 * end would map whole, private pages included, QEMU refuses the device and
 * says why.
 */
static void test_vhost_user_refused(void)
{
    g_autofree char *qsd = g_find_program_in_path("qemu-storage-daemon");
    g_autofree char *dir = g_dir_make_tmp("gmem-vhost-XXXXXX", NULL);
    g_autofree char *sock = g_build_filename(dir, "vhost-user-blk", NULL);
    g_autofree char *export = NULL;
    g_autofree char *device = NULL;
    g_autofree char *args = NULL;
    g_autofree char *out = NULL;
    g_autofree char *err = NULL;
    char *argv[] = {
        NULL, (char *)"--blockdev", (char *)"driver=null-co,node-name=disk0",
        (char *)"--export", NULL, NULL,
    };
    GPid pid;
    QTestState *qts;
    QDict *resp;
    int status;

    if (!qsd) {
        g_test_skip("no qemu-storage-daemon here: Debian's qemu-system-common"
                    " has it, and scripts/deps installs it");
        return;
    }
    export = g_strdup_printf("type=vhost-user-blk,id=exp0,node-name=disk0,"
                             "addr.type=unix,addr.path=%s,writable=on", sock);
    argv[0] = qsd;
    argv[4] = export;
    g_assert(g_spawn_async(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD |
                           G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, &pid,
                           NULL));
    gmem_wait_for(g_file_test(sock, G_FILE_TEST_EXISTS),
                  "qemu-storage-daemon's socket");
    g_assert_true(g_file_test(sock, G_FILE_TEST_EXISTS));
    device = g_strdup_printf("-chardev socket,id=vhost0,path=%s"
                             " -device vhost-user-blk-pci,id=vub0,"
                             "chardev=vhost0", sock);

    /* Shared RAM: the back end answers, and the device is there. */
    qts = qtest_initf("-machine q35,memory-backend=ram0 -m 64M"
                      " -object memory-backend-memfd,id=ram0,size=64M,"
                      "share=on %s", device);
    resp = qtest_qmp(qts, "{'execute': 'qom-get', 'arguments': {'path':"
                     " '/machine/peripheral/vub0', 'property': 'realized'}}");
    g_assert_true(qdict_get_bool(resp, "return"));
    qobject_unref(resp);
    qtest_quit(qts);

    /* guest_memfd RAM: refused, with the reason. */
    args = g_strdup_printf("-accel qtest -machine q35,memory-backend=mem0"
                           " -m 64M -object memory-backend-guest-memfd,"
                           "id=mem0,size=64M,kernel-model=on %s", device);
    status = gmem_run_qemu(args, &out, &err);
    g_assert_true(WIFEXITED(status));
    g_assert_cmpint(WEXITSTATUS(status), ==, 1);
    g_assert_nonnull(strstr(err, "vhost-user cannot serve this guest: its"
                            " RAM 'mem0' is in-place guest_memfd memory"));
    g_assert_nonnull(strstr(err, "virtio-blk-pci"));

    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    g_spawn_close_pid(pid);
    unlink(sock);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    qtest_add_func("/guest-memfd/virtio-blk/works", test_works);
    qtest_add_func("/guest-memfd/virtio-blk/private-desc", test_private_desc);
    qtest_add_func("/guest-memfd/virtio-blk/private-avail",
                   test_private_avail);
    qtest_add_func("/guest-memfd/virtio-blk/private-data", test_private_data);
    qtest_add_func("/guest-memfd/virtio-blk/private-status",
                   test_private_status);
    qtest_add_func("/guest-memfd/virtio-blk/private-used", test_private_used);
    qtest_add_func("/guest-memfd/virtio-blk/in-flight", test_in_flight);
    qtest_add_func("/guest-memfd/virtio-blk/in-flight-rings",
                   test_in_flight_rings);
    qtest_add_func("/guest-memfd/virtio-blk/in-flight-used",
                   test_in_flight_used);
    qtest_add_data_func("/guest-memfd/virtio-net/private-desc", "desc",
                        test_net_private);
    qtest_add_data_func("/guest-memfd/virtio-net/private-avail", "avail",
                        test_net_private);
    qtest_add_data_func("/guest-memfd/virtio-net/private-used", "used",
                        test_net_private);
    qtest_add_data_func("/guest-memfd/virtio-net/private-buffer", "buffer",
                        test_net_private);
    qtest_add_func("/guest-memfd/vhost-user-blk/refused",
                   test_vhost_user_refused);
    return g_test_run();
}
