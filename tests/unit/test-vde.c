/*
 * Tests of the vde netdev against vde_switch from vde2: two qnic vde
 * clients on one switch exchange frames byte-exact, then qnic and QEMU 7.2
 * (its vde netdev on the same switch, hubbed to a socket netdev whose far
 * end this test holds) do the same, and a missing switch is a one-line
 * error. The switch runs as a daemon in a private directory and is killed
 * at the end.
 */
#include "test-tap-helpers.h"
#include "qnic-config.h"
#include "../lib/test-backends.h"

#include <signal.h>

typedef struct Switch {
    char *dir;
    char *sock;
    GPid pid;
} Switch;

static bool switch_start(Switch *sw)
{
    g_autofree char *pidfile = NULL, *pidstr = NULL;

    sw->dir = g_dir_make_tmp("qnic-vde-XXXXXX", NULL);
    sw->sock = g_build_filename(sw->dir, "sw", NULL);
    pidfile = g_build_filename(sw->dir, "pid", NULL);
    /* Hub mode: every frame reaches every port, no MAC learning delays. */
    if (test_sh("vde_switch -x -s %s -d -p %s", sw->sock, pidfile) != 0) {
        return false;
    }
    /* The daemon may create the pid file before writing the number: wait
     * for a pid, not for the file (up to 10 s on a loaded machine). */
    for (int i = 0; i < 1000 && sw->pid <= 0; i++) {
        g_clear_pointer(&pidstr, g_free);
        if (g_file_get_contents(pidfile, &pidstr, NULL, NULL)) {
            sw->pid = atoi(pidstr);
        }
        if (sw->pid <= 0) {
            g_usleep(10000);
        }
    }
    return sw->pid > 0;
}

static void switch_stop(Switch *sw)
{
    if (sw->pid > 0) {
        kill(sw->pid, SIGTERM);
        for (int i = 0; i < 100 && kill(sw->pid, 0) == 0; i++) {
            g_usleep(10000);
        }
        kill(sw->pid, SIGKILL);
    }
    test_sh("rm -rf %s", sw->dir);
    g_free(sw->dir);
    g_free(sw->sock);
}

static const char *need_vde(void)
{
#ifndef CONFIG_VDE
    return "qnic was built without libvdeplug";
#else
    if (test_sh("command -v vde_switch >/dev/null") != 0) {
        return "vde_switch (vde2) is not installed";
    }
    return NULL;
#endif
}

static void test_errors(void)
{
#ifdef CONFIG_VDE
    expect_error("vde,id=v0,sock=/nonexistent/vde.ctl", "could not connect to the switch at "
                 "/nonexistent/vde.ctl");
#else
    expect_error("vde,id=v0", "built without libvdeplug");
#endif
}

/* Frames crossing until the far sink has seen `want` of them. */
static void exchange(TestSink *from, TestSink *to, uint32_t seed)
{
    uint8_t f[1514];
    size_t n = test_frame(f, 60 + (seed % 10) * 140, seed);
    GByteArray *b;

    g_ptr_array_set_size(to->frames, 0);
    g_assert_cmpint(qnic_net_send(from->nc, f, n), ==, n);
    g_assert_true(test_sink_wait(to, 5000));
    b = g_ptr_array_index(to->frames, 0);
    g_assert_cmpmem(b->data, b->len, f, n);
}

/* The parent owns the switch (so it is killed even when a check fails);
 * the body runs in a subprocess with a time limit. */
static void run_with_switch(const char *path)
{
    Switch sw = { 0 };

    g_assert_true(switch_start(&sw));
    g_setenv("QNIC_TEST_VDE_SOCK", sw.sock, TRUE);
    g_test_trap_subprocess(path, 60 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_INHERIT_STDERR);
    switch_stop(&sw);
    g_test_trap_assert_passed();
}

static void test_two_clients(void)
{
    const char *skip = need_vde();
    Switch sw = { .sock = (char *)g_getenv("QNIC_TEST_VDE_SOCK") };
    g_autoptr(GError) err = NULL;
    g_autofree char *oa = NULL, *ob = NULL;

    if (skip) {
        g_test_skip(skip);
        return;
    }
    if (!g_test_subprocess()) {
        run_with_switch("/vde/two-clients");
        return;
    }
    oa = g_strdup_printf("vde,id=va,sock=%s", sw.sock);
    ob = g_strdup_printf("vde,id=vb,sock=%s,port=5", sw.sock);
    QnicNetdev *a = qnic_netdev_add_str(test_backends(), oa, &err);
    g_assert_no_error(err);
    QnicNetdev *b = qnic_netdev_add_str(test_backends(), ob, &err);
    g_assert_no_error(err);
    TestSink *sa = test_sink_new(a->ncs[0], "sa"), *sb = test_sink_new(b->ncs[0], "sb");

    for (uint32_t i = 0; i < 5; i++) {
        exchange(sa, sb, i);
        exchange(sb, sa, 100 + i);
    }
    test_sink_free(sa);
    test_sink_free(sb);
    qnic_netdev_del(a);
    qnic_netdev_del(b);
}

static void test_qemu(void)
{
    const char *skip = need_vde();
    Switch sw = { .sock = (char *)g_getenv("QNIC_TEST_VDE_SOCK") };
    g_autoptr(GError) err = NULL;
    g_autofree char *qopt = NULL, *nopt = NULL;
    uint16_t port;
    int lfd, cfd;
    GPid pid;
    uint8_t f[1514];

    if (!skip) {
        skip = test_need_qemu();
    }
    if (skip) {
        g_test_skip(skip);
        return;
    }
    if (!g_test_subprocess()) {
        run_with_switch("/vde/qemu");
        return;
    }
    lfd = test_listen_tcp(&port);
    qopt = g_strdup_printf("vde,id=vq,sock=%s", sw.sock);
    nopt = g_strdup_printf("vde,id=vn,sock=%s", sw.sock);
    QnicNetdev *nd = qnic_netdev_add_str(test_backends(), nopt, &err);
    g_assert_no_error(err);
    TestSink *sink = test_sink_new(nd->ncs[0], "sink");

    cfd = test_qemu_start_hub_peer(qopt, "vq", lfd, port, &pid);
    for (uint32_t i = 0; i < 4; i++) {
        size_t n = test_frame(f, 64 + i * 400, i);
        g_assert_cmpint(qnic_net_send(sink->nc, f, n), ==, n);
        g_autoptr(GByteArray) got = test_stream_recv(cfd, 10000);
        g_assert_nonnull(got);
        g_assert_cmpmem(got->data, got->len, f, n);

        n = test_frame(f, 1514 - i * 300, 70 + i);
        g_ptr_array_set_size(sink->frames, 0);
        test_stream_send(cfd, f, n);
        g_assert_true(test_sink_wait(sink, 10000));
        GByteArray *b = g_ptr_array_index(sink->frames, 0);
        g_assert_cmpmem(b->data, b->len, f, n);
    }
    close(cfd);
    close(lfd);
    test_qemu_stop_and_clean(pid);
    test_sink_free(sink);
    qnic_netdev_del(nd);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    qnic_bql_lock();
    g_test_add_func("/vde/errors", test_errors);
    g_test_add_func("/vde/two-clients", test_two_clients);
    g_test_add_func("/vde/qemu", test_qemu);
    return g_test_run();
}
