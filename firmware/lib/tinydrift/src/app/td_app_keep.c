/* The monitor's reference kept across power cycles (td_port_keep_save / _load).
 *
 * The device learns its reference on its first inferences where it is installed. Learned
 * anew at every boot, a device that reboots after its world has drifted (a power cut, a
 * watchdog, an update) would learn the drift as its normal and never alarm on it. So once
 * commissioning finishes the reference is saved, taken back at the next boot, and
 * forgotten only by the host's RESET ("this is normal now": the device learns anew and
 * keeps that one). A record of another model or build, or torn by a power cut mid-save,
 * fails its check and is not taken: the device then learns, as on a board that keeps
 * nothing. The boot line says which (`reference=kept` or `reference=learning`), and a line
 * "tinydrift app reference=kept|learned dead=N.N%" follows once one is in effect.
 */
#include <string.h>

#include "td_app.h"
#include "td_port.h"

#if TD_APP_HAS_MONITOR

#define TD_APP_KEEP_MAGIC 0x66726474u /* "tdrf" */

typedef struct {
    uint32_t magic;                                /* TD_APP_KEEP_MAGIC; 0 once forgotten */
    uint32_t size;                                 /* sizeof this record in the build that saved it */
    uint8_t model_hash[TD_PROTO_MODEL_HASH_BYTES]; /* the model and monitor config it was learned for */
    td_commission_t commission;
    uint32_t check;                                /* FNV-1a of every byte before it */
} td_app_kept_t;

static uint32_t td_app_keep_check(const td_app_kept_t *record)
{
    const uint8_t *bytes = (const uint8_t *)record;
    uint32_t hash = 2166136261u;
    for (size_t i = 0; i < offsetof(td_app_kept_t, check); ++i) {
        hash = (hash ^ bytes[i]) * 16777619u;
    }
    return hash;
}

void td_app_keep_restore(td_app_t *app)
{
    td_app_kept_t record; /* ~0.4 KB of stack, at boot and after an update: never inside an inference */
    app->reference_kept = 0;
    app->reference_restored = 0;
    if (!td_port_keep_load(&record, sizeof record) || record.magic != TD_APP_KEEP_MAGIC ||
        record.size != (uint32_t)sizeof record || record.check != td_app_keep_check(&record) ||
        memcmp(record.model_hash, app->model_hash, sizeof record.model_hash) != 0) {
        return;
    }
    if (td_monitor_commission_restore(&app->monitor, td_app_monitor_config(), &record.commission) == TD_MONITOR_OK) {
        app->reference_kept = 1;
        app->reference_restored = 1;
    }
}

void td_app_keep_after_update(td_app_t *app)
{
    td_app_kept_t record;
    if (app->reference_kept || !td_monitor_commissioned(&app->monitor, td_app_monitor_config())) {
        return;
    }
    /* once a run, saved or not: a board that keeps nothing is not asked again and again */
    app->reference_kept = 1;
    td_app_print_reference(app, "learned");
    memset(&record, 0, sizeof record); /* padding too: the check reads every byte */
    record.magic = TD_APP_KEEP_MAGIC;
    record.size = (uint32_t)sizeof record;
    memcpy(record.model_hash, app->model_hash, sizeof record.model_hash);
    record.commission = app->monitor.commission;
    record.check = td_app_keep_check(&record);
    (void)td_port_keep_save(&record, sizeof record);
}

void td_app_keep_forget(td_app_t *app)
{
    td_app_kept_t record;
    app->reference_kept = 0;
    app->reference_restored = 0;
    memset(&record, 0, sizeof record);
    (void)td_port_keep_save(&record, sizeof record);
}

#endif
