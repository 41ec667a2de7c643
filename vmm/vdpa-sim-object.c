/*
 * `-object x-vdpa-sim,id=ID,netdev=N[,mac=][,suspend=][,batch=][,ctrl=][,packed=]`:
 * qnic's vDPA device simulator (qnic/vdpa-sim.h) as a vDPA device this VM
 * can open, so `-netdev vhost-vdpa,vhostdev=x-vdpa-sim:ID` runs the whole
 * vhost-vdpa path (ioctls, IOTLB, shadow control queue) with frames on
 * netdev N, on a host without vDPA, driven by any guest or qtest driver.
 * It is a qnic extension (QEMU has no such object): the opener installed
 * here hands every other path to the real device files.
 */
#include "vmm/vmm.h"
#include "qnic/vdpa-sim.h"
#include "qnic/log.h"

#define SIM_PREFIX "x-vdpa-sim:"

typedef struct SimObject {
    QnicOpts *opts;
    QnicVdpaSim *sim;           /* while a netdev has it open */
} SimObject;

static struct {
    GPtrArray *objects;         /* SimObject * */
    QnicBackends *be;
    const QnicVdpaOpener *real;
} sims;

static SimObject *sim_find(const char *id)
{
    for (guint i = 0; sims.objects && i < sims.objects->len; i++) {
        SimObject *o = g_ptr_array_index(sims.objects, i);
        if (g_strcmp0(qnic_opts_get(o->opts, "id"), id) == 0) {
            return o;
        }
    }
    return NULL;
}

static void *sim_open(void *ctx, const char *path, int fd, const QnicVdpaOps **ops,
                      GError **errp)
{
    QnicVdpaSimConfig cfg = { .be = sims.be };
    g_autofree char *devopts = NULL;
    const char *mac;
    SimObject *o;

    if (!path || !g_str_has_prefix(path, SIM_PREFIX)) {
        return sims.real->open(sims.real->ctx, path, fd, ops, errp);
    }
    o = sim_find(path + strlen(SIM_PREFIX));
    if (!o) {
        qnic_error_setg_invalid(errp, "Could not open '%s': no -object x-vdpa-sim with that id",
                                path);
        return NULL;
    }
    if (o->sim) {
        qnic_error_setg_invalid(errp, "Could not open '%s': Device or resource busy", path);
        return NULL;
    }
    mac = qnic_opts_get(o->opts, "mac");
    devopts = g_strdup_printf("netdev=%s%s%s%s", qnic_opts_get(o->opts, "netdev"),
                              mac ? ",mac=" : "", mac ? mac : "",
                              qnic_opts_get_bool(o->opts, "packed", true) ? ",packed=on" : "");
    cfg.device_opts = devopts;
    cfg.no_suspend = !qnic_opts_get_bool(o->opts, "suspend", true);
    cfg.no_batch = !qnic_opts_get_bool(o->opts, "batch", true);
    cfg.no_ctrl_vq = !qnic_opts_get_bool(o->opts, "ctrl", true);
    o->sim = qnic_vdpa_sim_new(&cfg, errp);
    if (!o->sim) {
        qnic_error_prefix(errp, "x-vdpa-sim '%s': ", qnic_opts_get(o->opts, "id"));
        return NULL;
    }
    *ops = &qnic_vdpa_sim_ops;
    return o->sim;
}

static void sim_close(void *ctx, void *dev)
{
    for (guint i = 0; sims.objects && i < sims.objects->len; i++) {
        SimObject *o = g_ptr_array_index(sims.objects, i);
        if (o->sim == dev) {
            qnic_vdpa_sim_release(o->sim);
            qnic_vdpa_sim_free(o->sim);
            o->sim = NULL;
            return;
        }
    }
    if (sims.real->close) {
        sims.real->close(sims.real->ctx, dev);
    }
}

static const QnicVdpaOpener sim_opener = { .open = sim_open, .close = sim_close };

void qnic_vmm_vdpa_sim_add(QnicOpts *opts)
{
    SimObject *o = g_new0(SimObject, 1);

    if (!sims.objects) {
        sims.objects = g_ptr_array_new();
    }
    o->opts = opts;
    g_ptr_array_add(sims.objects, o);
}

void qnic_vmm_vdpa_sim_install(QnicBackends *be)
{
    if (!sims.objects || sims.real) {
        return;
    }
    sims.be = be;
    sims.real = qnic_vhost_vdpa_opener();
    qnic_vhost_vdpa_set_opener(&sim_opener);
}

void qnic_vmm_vdpa_sim_cleanup(void)
{
    for (guint i = 0; sims.objects && i < sims.objects->len; i++) {
        SimObject *o = g_ptr_array_index(sims.objects, i);
        if (o->sim) {
            qnic_vdpa_sim_free(o->sim);
        }
        qnic_opts_free(o->opts);
        g_free(o);
    }
    if (sims.objects) {
        g_ptr_array_free(sims.objects, TRUE);
    }
    if (sims.real) {
        qnic_vhost_vdpa_set_opener(NULL);
    }
    memset(&sims, 0, sizeof(sims));
}
