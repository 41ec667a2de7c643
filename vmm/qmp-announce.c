/*
 * QMP announce-self: every NIC (or those named in "interfaces") tells the
 * network where it is, as after a migration: a broadcast RARP request for
 * its MAC, and virtio-net also asks a driver that offered GUEST_ANNOUNCE to
 * announce itself (qnic_net_announce_self). QEMU's schedule: the first
 * round at once, then `rounds`-1 more, the k-th wait being initial +
 * (k-1)*step ms, capped at max. A timer with an "id" is its own; a second
 * announce-self with the same id (or none, for the unnamed one) replaces
 * it. Timers run on the machine's clock (realtime under KVM, qtest's
 * manual clock under qtest) and belong to the session that started them.
 */
#include "vmm/qmp-int.h"
#include "qnic/clock.h"

const ArgDesc qmp_announce_args[] = {
    { "initial", ARG_INT, false }, { "max", ARG_INT, false }, { "rounds", ARG_INT, false },
    { "step", ARG_INT, false }, { "interfaces", ARG_STR_LIST, true }, { "id", ARG_STR, true },
    { NULL }
};

typedef struct AnnounceTimer {
    QnicMachine *machine;
    QnicTimer *timer;
    int64_t initial, max, rounds, step;
    int64_t round;              /* rounds left */
    char **interfaces;          /* NULL: every NIC */
} AnnounceTimer;

static void announce_timer_free(gpointer p)
{
    AnnounceTimer *t = p;

    qnic_timer_free(t->timer);
    g_strfreev(t->interfaces);
    g_free(t);
}

static void announce_once(AnnounceTimer *t)
{
    for (GList *l = qnic_net_clients(t->machine->cfg.backends); l; l = l->next) {
        QnicNetClient *nc = l->data;
        if (nc->ops->kind == QNIC_NET_CLIENT_NIC && nc->queue_index == 0 &&
            (!t->interfaces || g_strv_contains((const char *const *)t->interfaces, nc->name))) {
            qnic_net_announce_self(nc);
        }
    }
}

/* Run a round; arm the next one (QEMU's wait: initial + done*step, at most
 * max, max also when the sum is negative). */
static void announce_round(void *opaque)
{
    AnnounceTimer *t = opaque;
    int64_t wait;

    announce_once(t);
    if (--t->round <= 0) {
        return;
    }
    wait = t->initial + (t->rounds - t->round - 1) * t->step;
    if (wait < 0 || wait > t->max) {
        wait = t->max;
    }
    qnic_timer_mod(t->timer, qnic_clock_ns() + MAX(wait, 0) * 1000000);
}

static char **string_list(JsonObject *args, const char *name)
{
    JsonArray *a = json_object_has_member(args, name) ?
                   json_object_get_array_member(args, name) : NULL;
    GStrvBuilder *b;

    if (!a) {
        return NULL;
    }
    b = g_strv_builder_new();
    for (guint i = 0; i < json_array_get_length(a); i++) {
        g_strv_builder_add(b, json_array_get_string_element(a, i));
    }
    char **v = g_strv_builder_end(b);
    g_strv_builder_unref(b);
    return v;
}

JsonNode *qmp_announce_self(QnicQmpSession *s, JsonObject *args, const char **cls, char **desc)
{
    GHashTable **timers = qmp_session_announce_timers(s);
    AnnounceTimer *t = g_new0(AnnounceTimer, 1);
    const char *id = json_object_has_member(args, "id") ?
                     json_object_get_string_member(args, "id") : "";

    t->machine = qmp_session_machine(s);
    t->initial = json_object_get_int_member(args, "initial");
    t->max = json_object_get_int_member(args, "max");
    t->rounds = json_object_get_int_member(args, "rounds");
    t->step = json_object_get_int_member(args, "step");
    t->round = t->rounds;
    t->interfaces = string_list(args, "interfaces");
    t->timer = qnic_timer_new(announce_round, t);
    if (!*timers) {
        *timers = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, announce_timer_free);
    }
    g_hash_table_replace(*timers, g_strdup(id), t);
    if (t->rounds > 0 && t->machine->cfg.backends) {
        announce_round(t);
    }
    return NULL;
}
