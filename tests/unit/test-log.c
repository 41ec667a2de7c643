/*
 * util/log.c: rate limiting of guest- and peer-triggered messages (issue 21,
 * finding 7: one line per refused vhost-user request let a peer turn 2 MB
 * into 9.8 MB of log). A call site prints a burst, then a few lines a
 * second with a "suppressed K" summary; qnic_log_count() counts them all.
 */
#include "qnic/log.h"
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

static unsigned count_lines(const char *path, const char *needle)
{
    g_autofree char *text = NULL;
    unsigned n = 0;

    g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
    for (char *p = text; (p = strstr(p, needle)); p += strlen(needle)) {
        n++;
    }
    return n;
}

static void guest_error_burst(unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        qnic_guest_error("guest poked register %u", i);
    }
}

static void test_guest_error(void)
{
    g_autofree char *path = g_build_filename(g_get_tmp_dir(), "qnic-test-log-XXXXXX", NULL);
    int fd = g_mkstemp(path);
    uint64_t before = qnic_log_count(QNIC_LOG_GUEST_ERROR);

    g_assert_cmpint(fd, >=, 0);
    close(fd);
    qnic_log_mask = QNIC_LOG_GUEST_ERROR;
    g_assert_true(qnic_log_set_file(path, NULL));
    guest_error_burst(1000);
    /* every message counted, only the burst printed */
    g_assert_cmpuint(qnic_log_count(QNIC_LOG_GUEST_ERROR) - before, ==, 1000);
    g_assert_cmpuint(count_lines(path, "guest poked"), ==, QNIC_LOG_RATE_BURST);
    /* another call site has its own budget */
    qnic_guest_error("another site");
    g_assert_cmpuint(count_lines(path, "another site"), ==, 1);
    /* after a pause: a summary line, then a few more lines, not all */
    g_usleep(G_USEC_PER_SEC + G_USEC_PER_SEC / 4);
    guest_error_burst(1000);
    g_assert_true(qnic_log_set_file(NULL, NULL));
    g_assert_cmpuint(count_lines(path, "suppressed 990 similar messages"), ==, 1);
    g_assert_cmpuint(count_lines(path, "guest poked"), >, QNIC_LOG_RATE_BURST);
    g_assert_cmpuint(count_lines(path, "guest poked"), <=,
                     QNIC_LOG_RATE_BURST + 2 * QNIC_LOG_RATE_PER_SEC);
    unlink(path);
    qnic_log_mask = 0;
}

static void test_report(void)
{
    g_autofree char *path = g_build_filename(g_get_tmp_dir(), "qnic-test-log-XXXXXX", NULL);
    int fd = g_mkstemp(path);
    int saved = dup(STDERR_FILENO);

    g_assert_cmpint(fd, >=, 0);
    /* Reports always go to stderr: catch it in a file. */
    fflush(stderr);
    dup2(fd, STDERR_FILENO);
    for (unsigned i = 0; i < 500; i++) {
        qnic_report_ratelimited("peer refused request %u", i);
        qnic_warn_ratelimited("peer went away %u", i);
    }
    qnic_report("unlimited %d", 1);
    qnic_report("unlimited %d", 2);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fd);
    g_assert_cmpuint(count_lines(path, "test-log: peer refused request"), ==,
                     QNIC_LOG_RATE_BURST);
    g_assert_cmpuint(count_lines(path, "test-log: warning: peer went away"), ==,
                     QNIC_LOG_RATE_BURST);
    g_assert_cmpuint(count_lines(path, "unlimited"), ==, 2);
    unlink(path);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    qnic_log_set_progname("test-log");
    g_test_add_func("/log/ratelimit/guest-error", test_guest_error);
    g_test_add_func("/log/ratelimit/report", test_report);
    return g_test_run();
}
