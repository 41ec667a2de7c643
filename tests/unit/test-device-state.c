/*
 * Every device model qnic registers can save and load its state, and the
 * framing qnic_device_save_state/load_state put around a model's sections
 * holds for all of them: a fresh device's state loads into another
 * machine's device of the same model and saves again to the same bytes; a
 * stream made by another model, a stream cut short and a stream with bytes
 * after it are refused, and the device that refused is unchanged. The
 * per-model tests (virtio-net, e1000, rtl8139, with traffic and in-flight
 * descriptors) and the migration qtest go further; this one makes sure no
 * model is left out. The machine's own sections go with them: the PCI
 * bus's built-in functions (the PIIX3's interrupt routing) and the hotplug
 * registers with an unplug the guest has not yet ejected.
 */
#include "qnic/machine.h"
#include "qnic/backends.h"
#include "qnic/device.h"
#include "qnic/net.h"
#include "qnic/state.h"
#include "qnic/pci.h"
#include "../lib/state-patch.h"

#include <string.h>

static const char *const models[] = {
    "virtio-net-pci,netdev=n0,addr=4,mac=52:54:00:12:34:56",
    "virtio-net-pci,netdev=n0,addr=4,disable-modern=on,mac=52:54:00:12:34:56",
    "virtio-net-pci,netdev=n0,addr=4,disable-legacy=on,packed=on,mq=on,ctrl_vq=on,"
        "mac=52:54:00:12:34:56",
    "virtio-net-pci-transitional,netdev=n0,addr=4,mac=52:54:00:12:34:56",
    "virtio-net-pci-non-transitional,netdev=n0,addr=4,mac=52:54:00:12:34:56",
    "virtio-net-device,netdev=n0,mac=52:54:00:12:34:56",
    "e1000,netdev=n0,addr=4,mac=52:54:00:12:34:56",
    "e1000-82544gc,netdev=n0,addr=4,mac=52:54:00:12:34:56",
    "e1000-82545em,netdev=n0,addr=4,mac=52:54:00:12:34:56",
    "rtl8139,netdev=n0,addr=4,mac=52:54:00:12:34:56",
};

typedef struct Vm {
    QnicBackends *be;
    QnicMachine *m;
    QnicDevice *dev;
} Vm;

static void vm_new(Vm *vm, const char *model)
{
    QnicMachineConfig cfg = { .ram_size = 16u << 20 };
    g_autoptr(GError) err = NULL;

    vm->be = qnic_backends_new();
    cfg.backends = vm->be;
    vm->m = qnic_machine_new(&cfg, &err);
    g_assert_no_error(err);
    g_assert_true(qnic_netdev_add_str(vm->be, "hubport,id=n0,hubid=0", &err));
    vm->dev = qnic_device_create_str(vm->m, model, &err);
    g_assert_no_error(err);
}

static void vm_free(Vm *vm)
{
    qnic_machine_free(vm->m);
    qnic_backends_free(vm->be);
}

static GByteArray *save(Vm *vm)
{
    g_autoptr(GError) err = NULL;
    GByteArray *b = g_byte_array_new();
    if (!qnic_device_save_state(vm->dev, b, &err)) {
        g_error("save %s: %s", vm->dev->cls->name, err->message);
    }
    return b;
}

static void assert_same(GByteArray *a, GByteArray *b)
{
    g_autofree char *da = qnic_state_dump(a->data, a->len, NULL);
    g_autofree char *db = qnic_state_dump(b->data, b->len, NULL);
    g_assert_nonnull(da);
    g_assert_cmpstr(da, ==, db);
    g_assert_cmpmem(a->data, a->len, b->data, b->len);
}

/* Refused, with an error, and the device's state as before. */
static void assert_refused(Vm *vm, const uint8_t *p, size_t n, const char *msg)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GByteArray) before = save(vm);
    g_assert_false(qnic_device_load_state(vm->dev, p, n, &err));
    g_assert_nonnull(err);
    if (msg && !strstr(err->message, msg)) {
        g_error("%s: expected '%s' in: %s", vm->dev->cls->name, msg, err->message);
    }
    g_autoptr(GByteArray) after = save(vm);
    assert_same(before, after);
}

static void test_roundtrip(gconstpointer data)
{
    const char *model = data;
    Vm a, b;
    g_autoptr(GError) err = NULL;

    vm_new(&a, model);
    vm_new(&b, model);
    g_autoptr(GByteArray) s = save(&a);
    g_autofree char *name = qnic_state_peek_name(&(QnicStateReader){ s->data, s->len, 0 });
    g_assert_cmpstr(name, ==, a.dev->cls->name);
    if (!qnic_device_load_state(b.dev, s->data, s->len, &err)) {
        g_error("load %s: %s", model, err->message);
    }
    g_autoptr(GByteArray) s2 = save(&b);
    assert_same(s, s2);

    /* Cut short anywhere past the model's section, and trailing bytes. */
    for (size_t n = 0; n < s->len; n += 1 + n / 16) {
        g_autofree uint8_t *cut = g_memdup2(s->data, n);
        assert_refused(&b, cut, n, NULL);
    }
    g_byte_array_append(s, (const uint8_t *)"\0", 1);
    assert_refused(&b, s->data, s->len, "after the last section");
    vm_free(&a);
    vm_free(&b);
}

/* A stream from one model is refused by every other. */
static void test_cross_model(void)
{
    Vm e, r;
    vm_new(&e, "e1000,netdev=n0,addr=4");
    vm_new(&r, "rtl8139,netdev=n0,addr=4");
    g_autoptr(GByteArray) es = save(&e);
    g_autoptr(GByteArray) rs = save(&r);
    assert_refused(&r, es->data, es->len, "found section 'e1000' instead");
    assert_refused(&e, rs->data, rs->len, "found section 'rtl8139' instead");
    vm_free(&e);
    vm_free(&r);
}

/* The machine's sections: PIRQ routing and a pending unplug carried over,
 * and a pending unplug of an empty slot refused with nothing applied. */
static void test_machine_bus(void)
{
    Vm a, b;
    g_autoptr(GError) err = NULL;
    const char *model = "e1000,netdev=n0,addr=4,mac=52:54:00:12:34:56";

    vm_new(&a, model);
    vm_new(&b, model);
    QnicPciDevice *isa_a = a.m->pci->devices[QNIC_PCI_DEVFN(1, 0)];
    QnicPciDevice *isa_b = b.m->pci->devices[QNIC_PCI_DEVFN(1, 0)];
    qnic_pci_config_write(isa_a, 0x60, 0x0b0a0b0a, 4);
    QnicPciHotplug *hp_a = qnic_pci_bus_hotplug(a.m->pci);
    g_assert_true(qnic_pci_hotplug_request_unplug(hp_a, (QnicPciDevice *)a.dev, &err));
    g_assert_no_error(err);

    g_autoptr(GByteArray) s = g_byte_array_new();
    qnic_machine_save_state(a.m, s);
    g_autofree char *dump = qnic_state_dump(s->data, s->len, &err);
    g_assert_nonnull(strstr(dump, "section acpi-pci-hotplug version 1\nacpi-pci-hotplug.up = 0\n"
                                  "acpi-pci-hotplug.down = 16\n"));

    /* A pending unplug of slot 5, where nothing is plugged: refused. */
    g_autoptr(GByteArray) bad = g_byte_array_new();
    g_byte_array_append(bad, s->data, s->len);
    g_assert_true(state_patch_uint(bad, "acpi-pci-hotplug", "down", 0, 1u << 5));
    QnicStateReader r;
    qnic_state_reader_init(&r, bad->data, bad->len);
    g_assert_false(qnic_machine_load_state(b.m, &r, &err));
    g_assert_nonnull(strstr(err->message, "slot 5 has no device that can be unplugged"));
    g_clear_error(&err);
    g_assert_cmphex(qnic_pci_config_read(isa_b, 0x60, 4), ==, 0x80808080);

    qnic_state_reader_init(&r, s->data, s->len);
    g_assert_true(qnic_machine_load_state(b.m, &r, &err));
    g_assert_no_error(err);
    g_assert_true(qnic_state_reader_done(&r, NULL));
    g_assert_cmphex(qnic_pci_config_read(isa_b, 0x60, 4), ==, 0x0b0a0b0a);
    g_assert_true(qnic_pci_hotplug_unplug_pending(qnic_pci_bus_hotplug(b.m->pci),
                                                  (QnicPciDevice *)b.dev));
    g_autoptr(GByteArray) s2 = g_byte_array_new();
    qnic_machine_save_state(b.m, s2);
    assert_same(s, s2);
    vm_free(&a);
    vm_free(&b);
}

/* No registered model is without the ops. */
static void test_every_class(void)
{
    size_t n;
    g_autofree const QnicDeviceClass **cls = qnic_device_class_list(&n);
    g_assert_cmpuint(n, >=, 7);
    for (size_t i = 0; i < n; i++) {
        if (!cls[i]->save_state || !cls[i]->load_state) {
            g_error("device model %s cannot save or load its state", cls[i]->name);
        }
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    for (size_t i = 0; i < G_N_ELEMENTS(models); i++) {
        g_autofree char *path = g_strdup_printf("/device-state/roundtrip/%zu-%.*s", i,
                                                (int)strcspn(models[i], ","), models[i]);
        g_test_add_data_func(path, models[i], test_roundtrip);
    }
    g_test_add_func("/device-state/cross-model", test_cross_model);
    g_test_add_func("/device-state/every-class", test_every_class);
    g_test_add_func("/device-state/machine-bus", test_machine_bus);
    return g_test_run();
}
