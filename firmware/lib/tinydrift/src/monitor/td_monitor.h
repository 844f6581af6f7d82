/*
 * tinydrift drift monitor: integer-only drift scores for an int8 classifier.
 *
 * Per inference the monitor takes a summary vector of the model input (for the keyword
 * spotter: the per-channel mean of the 49x40 int8 features, see td_summarize_frames) and
 * the model's int8 softmax output, and keeps five scores against reference statistics
 * generated on the host (td_monitor_config_t, emitted as a const header):
 *
 *   TD_SCORE_MEAN     chi-square of the EWMA of the standardized (optionally whitened)
 *                     summary (mean shift)
 *   TD_SCORE_VAR      sum over channels of (EWMA variance ratio - 1)^2 (spread change)
 *   TD_SCORE_CONF     max probability of this inference (confidence)
 *   TD_SCORE_ENTROPY  entropy of this inference's output, from an exact 256-entry table
 *   TD_SCORE_LABEL    chi-square of the EWMA predicted-class histogram against the priors
 *
 * Each raw score is standardized with host-calibrated offset and gain and fed to a
 * one-sided CUSUM, S = clamp(S + z - k, 0, TD_CUSUM_MAX), with a warning and a drift level.
 * Label feedback drives a DDM-style error-rate test; raw PCM blocks drive sensor health.
 * Drift alarms latch until td_monitor_reset (the host's reset command).
 *
 * No heap, no floating point, saturating fixed point throughout; every value is
 * reproduced bit for bit by the host twin (tinydrift.monitor.twin).
 */
#ifndef TD_MONITOR_H
#define TD_MONITOR_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever the config struct or the arithmetic changes: generated headers check it. */
#define TD_MONITOR_ABI_VERSION 14

/* Capacity of the state, fixed at build time (no heap). Override with -D for other models. */
#ifndef TD_MONITOR_MAX_SUMMARY
#define TD_MONITOR_MAX_SUMMARY 64
#endif
#ifndef TD_MONITOR_MAX_CLASSES
#define TD_MONITOR_MAX_CLASSES 16
#endif
#define TD_MONITOR_MASK_WORDS ((TD_MONITOR_MAX_SUMMARY + 31) / 32)

/* Fixed-point formats: Qn means value * 2^n. */
#define TD_Z_FRAC_BITS 12        /* standardized values (units of sigma) and CUSUMs */
#define TD_EWMA_EXTRA_BITS 8     /* extra fraction kept in the per-channel EWMA state */
#define TD_PROB_FRAC_BITS 16     /* probabilities and rates */
#define TD_ENTROPY_FRAC_BITS 16  /* entropy in nats */
#define TD_CHANNEL_Z_MAX 32767   /* per-channel |z| clamp: 8 sigma, bounds every product */
#define TD_SCORE_Z_MAX 65536     /* per-score |z| clamp: 16 sigma per inference */
#define TD_CUSUM_MAX (1 << 30)   /* CUSUM saturation */
#define TD_CLIP_EWMA_SHIFT 12    /* light clipping's EWMA weight: 2^-12 a block */
#define TD_SUMMARY_FRAC_BITS 7   /* td_summarize_frames: summary = mean over frames * 2^7 */
#define TD_SENSOR_MAX_BLOCK 65536

/* Scores, in the order of every per-score array. */
enum {
    TD_SCORE_MEAN = 0,
    TD_SCORE_VAR = 1,
    TD_SCORE_CONF = 2,
    TD_SCORE_ENTROPY = 3,
    TD_SCORE_LABEL = 4,
    TD_SCORE_COUNT = 5
};

/* Alarm word: latched drift alarms in bits 0-4, live warnings in bits 8-12. */
#define TD_ALARM_DATA_DRIFT (1u << 0)
#define TD_ALARM_CONFIDENCE_DRIFT (1u << 1)
#define TD_ALARM_LABEL_SHIFT (1u << 2)
#define TD_ALARM_ERROR_RATE (1u << 3)
#define TD_ALARM_SENSOR_FAULT (1u << 4)
#define TD_ALARM_TYPES_MASK 0x1Fu
#define TD_WARNING_SHIFT 8
#define TD_WARNING(alarm) ((uint32_t)(alarm) << TD_WARNING_SHIFT)

/* Sensor flags: the last block's conditions in bits 0-3, persistent faults in bits 4-7. */
#define TD_SENSOR_CLIPPING (1u << 0)
#define TD_SENSOR_DC_OFFSET (1u << 1)
#define TD_SENSOR_STUCK (1u << 2)
#define TD_SENSOR_SILENCE (1u << 3)
#define TD_SENSOR_CONDITION_COUNT 4
#define TD_SENSOR_FAULT_SHIFT 4
/* The sensor blocks since the last update, counted for the inference they feed (the
 * state's input_* counters): a block is dead if it is stuck or flat and that condition
 * becomes a fault when it persists (the signal lost), and sound if it has no such condition
 * at all (a block clipping or offset only is neither: the scene or speech is still in it, and
 * loud speech gives a 20 ms block a large mean now and then).
 * An inference without a sound block is held out of every score (td_monitor_update); its
 * dead blocks' share counts toward a sensor that fails on and off (td_sensor_intermittent.c).
 * The two counters hold up to this many blocks, then both halve (rounding up, so dead =
 * blocks stays so). */
#define TD_SENSOR_INPUT_MAX_BLOCKS 255u
/* Pixel values a camera frame is compared by with the previous one (a stuck camera): spread
 * over the whole frame and its colours; 32 bytes instead of a frame buffer. */
#define TD_SENSOR_IMAGE_PROBES 32u

/* Commissioning: at most this many inferences (keeps its sums inside int32). */
#define TD_MONITOR_MAX_COMMISSION 1024
/* A channel's commissioning variance is floored at this (Q12: 1/64 of the training one). */
#define TD_COMMISSION_MIN_VAR_Q12 64
/* After commissioning, each commissioning inference weighs as 2^this later ones in the
 * confidence and entropy centres (td_monitor_commission_refine). */
#define TD_CENTRE_COMMISSION_SHIFT 2
/* While commissioning, each inference's dead share is summed in units of 2^-this (16 bits
 * hold 1,023 wholly dead inferences, as many as commissioning can learn from). */
#define TD_COMMISSION_DEAD_BITS 6

/* The long-run spread of the scores (td_monitor_spread.c): blocks of 2^TD_SPREAD_BLOCK_SHIFT
 * inferences; the calibration's spread weighs as TD_SPREAD_PRIOR_BLOCKS blocks until that
 * many are learned, then each block as 1 / (2 x TD_SPREAD_PRIOR_BLOCKS). */
#define TD_SPREAD_BLOCK_SHIFT 6
#define TD_SPREAD_PRIOR_BLOCKS 32

/* The state's status byte: its high nibble reads TD_STATE_MARK from td_monitor_init on (a
 * state that was never initialized, zeroed or left as the stack had it, reads otherwise
 * with all but certainty); bit 0 is set once a spread block since the reset has ended. */
#define TD_STATE_MARK 0xA0u
#define TD_STATE_MARK_MASK 0xF0u
#define TD_STATE_SPREAD_LAST 0x01u

/* Return codes. */
#define TD_MONITOR_OK 0
#define TD_MONITOR_ERR_NULL (-1)
#define TD_MONITOR_ERR_CONFIG (-2)
#define TD_MONITOR_ERR_ARG (-3)
/* The state the caller holds is not this library's: one of them was built with other
 * TD_MONITOR_MAX_SUMMARY / TD_MONITOR_MAX_CLASSES (build both with the same). */
#define TD_MONITOR_ERR_BUILD (-4)
/* The state was never initialized (td_monitor_init), or what it holds cannot be a state of
 * this config (overwritten): nothing is updated. A zeroed state would otherwise run, silently
 * and wrongly: the variance reference, the spread gains and the running displays at zero. */
#define TD_MONITOR_ERR_STATE (-5)

/* Standardization and decision parameters of one score. */
typedef struct {
    int32_t offset;     /* raw value expected without drift (raw units) */
    int32_t gain_q16;   /* z(Q12) = (raw - offset) * gain_q16 >> 16; negative for "drop" */
    int32_t k;          /* CUSUM allowance, Q12 */
    int32_t warning;    /* CUSUM warning level, Q12 */
    int32_t drift;      /* CUSUM drift level, Q12 */
    int32_t limit;      /* one z at or above this (Q12, <= TD_SCORE_Z_MAX) latches at once;
                           0 = none: a large shift is seen as soon as its EWMA shows it,
                           not once the CUSUM of clipped z has climbed */
    /* Long-run spread (td_monitor_spread.c): what half the squared difference of two
     * consecutive blocks' mean z, times the block length, averaged on the calibration's
     * streams (Q12; 0 = off); and z's mean there (Q12), toward which z is drawn where the
     * device's own spread is wider. */
    int32_t spread_ref;
    int32_t spread_centre;
} td_score_params_t;

typedef struct {
    uint32_t abi_version;        /* TD_MONITOR_ABI_VERSION of the generator */
    uint16_t n_summary;          /* summary channels (<= TD_MONITOR_MAX_SUMMARY) */
    uint16_t n_classes;          /* model outputs (<= TD_MONITOR_MAX_CLASSES) */

    /* Input moments, per summary channel, in summary units. */
    const int16_t *ref_mean;     /* reference mean */
    const int32_t *inv_std_q28;  /* round(2^28 / reference standard deviation) */
    /* Optional [n_summary][n_summary] decorrelating matrix in Q12 (ZCA whitening of the
     * reference correlation shrunk toward identity), applied to the standardized summary,
     * so shifts across correlated channels are weighed against how the channels move
     * together; component j stays closest to channel j. NULL: each channel on its own. */
    const int16_t *whiten_q12;

    /* Model outputs. */
    const int32_t *prior_q16;    /* reference predicted-class frequencies */
    const int32_t *inv_prior_q8; /* round(2^8 / prior) */
    const uint16_t *entropy_q16; /* [256]: -p ln p in Q16 nats, p = i / 256 */
    int32_t ref_confidence_q16;  /* reference mean confidence (for display) */
    int32_t ref_entropy_q16;     /* reference mean entropy (for display) */
    int32_t atc_threshold;       /* ATC: confidence index (0..256) counted as "correct" */
    int32_t ref_accuracy_q16;    /* source accuracy the ATC threshold was fitted to */

    /* EWMA weights 2^-shift (0..15). */
    uint8_t mean_shift;
    uint8_t var_shift;
    uint8_t label_shift;
    uint8_t display_shift;       /* running confidence, entropy and ATC estimate */

    /* Components whose EWMA |z| or |variance ratio - 1| reaches these (Q12) are "moved"
     * (with whitening, component j is channel j decorrelated from its neighbours). */
    int32_t moved_mean_level;
    int32_t moved_var_level;
    /* CONFIDENCE_DRIFT latches DATA_DRIFT too unless the class mix explains it (LABEL_SHIFT
     * latched); even then, with at least this many moved components, as with an input score
     * at its warning level (0: that evidence off). A class mix that moves while noise fills
     * the channels is still noise. */
    uint16_t attribute_moved;
    /* The input's loudness, where the summary carries one (td_summarize_level's): a two-sided
     * CUSUM of its component's z (reference value loudness_k, Q12), either side reaching
     * loudness_limit (Q12; 0 = off), latches DATA_DRIFT at once, beside the mean score and
     * dated by the side's own excursion. A front end whose gain control divides the level out
     * of its features leaves a quieter or louder microphone in this one value, which the mean
     * score, a sum over every component's wander, reads late; a CUSUM adds up a small steady
     * step that speakers' own loudness buries in any one inference. */
    uint16_t loudness_component; /* < n_summary */
    int32_t loudness_k;
    int32_t loudness_limit;
    /* Optional [n_classes] (Q12; NULL: none): how far the loudness component's z sits, on the
     * reference's inferences of each predicted class, from its mean over all of them; taken
     * off the component's z before anything reads it (commissioning, the EWMAs, the CUSUM).
     * A silent clip is quieter than a word: the class explains part of the loudness, which
     * otherwise hides a small gain change in the spread, and a stream with more of one class
     * would read as louder or quieter. */
    const int16_t *loudness_class_offset;
    /* The input's quiet level, where the summary carries one (the loudness of the window's
     * quietest sensor block): a one-sided CUSUM of its component's z upward (reference value
     * loudness_k), reaching quiet_limit (Q12; 0 = off), latches DATA_DRIFT as the loudness
     * limit does. Noise added to a room fills the pauses between words, of any colour, while
     * the features' gain control and the mean loudness barely see it. */
    uint16_t quiet_component;    /* < n_summary */
    int32_t quiet_limit;

    uint32_t enabled_scores;     /* bit i enables score i */
    td_score_params_t score[TD_SCORE_COUNT];

    /* DDM-style error-rate test on label feedback. */
    uint32_t ddm_min_labels;     /* labels before the test starts */
    uint32_t ddm_warning_q8;     /* warning when p + s >= p_min + w * s_min (w in Q8) */
    uint32_t ddm_drift_q8;
    uint32_t ddm_reference_q16;  /* the reference's error rate: the test starts as if its first
                                    ddm_min_labels labels had come at it (0: from no best) */

    /* Commissioning: the first commission_n inferences after a reset (1..TD_MONITOR_MAX_COMMISSION;
     * 0 = off) learn where this device's own population sits - each channel's mean and
     * spread of z, the mean confidence and entropy, the predicted-class frequencies - and
     * the data, confidence and label scores then judge later inferences against that, not
     * against the training reference: a device installed among harmless new speakers stays
     * quiet, one whose world changes later alarms. With whitening, the components are
     * learned (after W, before the EWMAs). */
    uint16_t commission_n;
    /* The confidence and entropy centres go on learning after commissioning, as the running
     * mean of calm inferences (score below its warning level, alarm not latched), until their
     * weight reaches centre_n (each commissioning inference weighs 2^TD_CENTRE_COMMISSION_SHIFT);
     * 0 = they stay at the commissioning means. */
    uint16_t centre_n;

    /* Sensor health on raw PCM blocks (a camera model: on each image, td_sensor_image.c,
     * where a block is a frame, a sample a pixel value, stuck means the frame repeats the
     * previous one and silent means the frame is flat: dead, black or saturated). */
    int32_t clip_level;          /* |sample| >= clip_level counts as clipped (saturated) */
    uint32_t clip_rate_q16;      /* block is clipping when clipped share >= this */
    int32_t dc_level;            /* block has a DC offset when |mean| >= this, or when it is
                                    stuck at a value v with v^2 > silence_variance (0: off) */
    uint32_t stuck_variance;     /* block is stuck when its exact variance <= this (0: every
                                    sample the same); a camera: when no
                                    probed pixel value moved by more than this many levels */
    uint32_t silence_variance;   /* block is silent when variance <= this (and not stuck; a
                                    camera: whether it repeats or not) */
    uint16_t persist_blocks[TD_SENSOR_CONDITION_COUNT]; /* consecutive blocks to a fault; 0 = never */
    /* Light clipping: DATA_DRIFT when the share of clipping blocks over about the last
     * 2^TD_CLIP_EWMA_SHIFT blocks (an EWMA) reaches this (Q16); 0 = off. A gain set too high
     * clips the loudest syllables only, a block here and there, which never persists long
     * enough to be the CLIPPING fault, yet costs accuracy. */
    uint32_t clip_drift_q16;
    /* ...once the share has stayed at or above it this many consecutive blocks (>= 1), and
     * never after SENSOR_FAULT: a gain set wrong stays wrong, and a microphone that clips
     * hard is named by its CLIPPING fault, whose run of persist_blocks comes first. */
    uint16_t clip_drift_blocks;
    /* A sensor that fails on and off (td_sensor_intermittent.c): each inference adds the share
     * of its sensor blocks that were dead (1 for an inference whose every block lost the
     * signal, 0.5 for one dead half of its time), less the share of dead blocks while
     * commissioning plus dropout_margin (Q12), to a one-sided CUSUM; reaching dropout_limit
     * (Q12; 0 = off) latches SENSOR_FAULT. Dead stretches too short to become a fault of their
     * own (a microphone dead 3 s of every 4 or half of every second, a camera black one frame
     * in five) add up here wherever they fall, while a blink now and then drains away. Judged
     * once commissioning has learned the share. */
    uint16_t dropout_margin;
    int32_t dropout_limit;
} td_monitor_config_t;

/* The commissioning reference: sums while commissioning, the reference once learned. */
typedef struct {
    uint16_t count;                              /* inferences learned so far (<= commission_n) */
    uint16_t dead;                               /* dead share of each inference meanwhile, summed
                                                    (1/64 units, saturating), then their mean
                                                    over all inferences (Q16) */
    int32_t z_mean[TD_MONITOR_MAX_SUMMARY];      /* sum of z, then its mean (Q12) */
    int32_t z_scale[TD_MONITOR_MAX_SUMMARY];     /* sum of z^2 (Q12), then 2^24 / sd(z) */
    int32_t confidence;                          /* sum of confidence, then its mean in Q8 */
    int32_t entropy;                             /* sum of entropy, then its mean (Q16 nats) */
    int32_t prior_q16[TD_MONITOR_MAX_CLASSES];   /* class counts, then frequencies (Q16, >= 1) */
    uint16_t centre_weight[2];                   /* what the confidence and entropy centres have learned from */
} td_commission_t;

typedef struct {
    uint32_t t;                                  /* inferences since reset */
    int32_t mean_ewma[TD_MONITOR_MAX_SUMMARY];   /* EWMA of z, Q(12+8) */
    int32_t sq_ewma[TD_MONITOR_MAX_SUMMARY];     /* EWMA of z^2, Q(12+8) */
    int32_t loudness_cusum[2];                   /* CUSUM of the loudness component's z up, down (Q12) */
    uint32_t loudness_start[2];                  /* inference where each last left zero */
    int32_t quiet_cusum;                         /* CUSUM of the quiet component's z up (Q12) */
    uint32_t quiet_start;                        /* inference where it last left zero */
    int32_t class_ewma[TD_MONITOR_MAX_CLASSES];  /* EWMA of predicted-class indicators, Q16 */
    int32_t confidence_ewma;                     /* Q16 */
    int32_t entropy_ewma;                        /* Q16 nats */
    int32_t atc_ewma;                            /* Q16 */
    int32_t cusum[TD_SCORE_COUNT];               /* Q12 */
    uint32_t excursion_start[TD_SCORE_COUNT];    /* inference where each CUSUM last left zero */
    uint32_t alarms;                             /* latched TD_ALARM_* */
    uint32_t warnings;                           /* live TD_ALARM_* warnings of the scores */
    uint32_t alarm_time;                         /* inference of the first latched alarm */
    uint32_t change_time;                        /* its estimated change point */
    uint32_t moved_at_alarm[TD_MONITOR_MASK_WORDS];
    /* DDM */
    uint32_t labels;
    uint32_t errors;
    uint32_t ddm_p_min_q16;                      /* where p + s was lowest (0: no best yet) */
    uint32_t ddm_s_min_q16;
    uint32_t ddm_warning_time;                   /* inference index where that began */
    /* sensor */
    int32_t clip_ewma;                           /* EWMA of "this block clips", Q(16+8) */
    uint16_t clip_drift_run;                     /* consecutive blocks with clip_ewma >= level */
    uint16_t sensor_run[TD_SENSOR_CONDITION_COUNT];
    /* (these two bytes here, not above, fill the sensor runs' padding) */
    uint8_t sensor_flags;                        /* the last block's conditions | faults << 4 */
    uint8_t ddm_in_warning;                      /* DDM: 1 while p + s is at the warning level */
    uint32_t sensor_run_start[TD_SENSOR_CONDITION_COUNT];
    int32_t dropout_cusum;                       /* CUSUM of dead time over its share (Q12) */
    uint32_t dropout_start;                      /* inference where it last left zero */
    td_commission_t commission;                  /* the device's own reference (reported apart) */
    /* Long-run spread of each score's z (td_monitor_spread.c); a reset keeps what was learned */
    int32_t spread_sum[TD_SCORE_COUNT];          /* sum of z over the block under way */
    int32_t spread_last[TD_SCORE_COUNT];         /* the previous block's mean z, Q12 */
    int32_t spread[TD_SCORE_COUNT];              /* the spread learned (as spread_ref) */
    uint16_t spread_gain[TD_SCORE_COUNT];        /* Q12, <= 1: sqrt(spread_ref / max(spread, spread_ref)) */
    uint8_t spread_n;                            /* inferences in the block under way */
    uint8_t spread_blocks;                       /* blocks a spread learned from since init, up to TD_SPREAD_PRIOR_BLOCKS */
    uint8_t status;                              /* TD_STATE_MARK once initialized | TD_STATE_SPREAD_LAST */
    /* the inference to come: sensor blocks since the last update, dead ones, 1 if one was sound */
    uint8_t input_blocks;
    uint8_t input_dead;
    uint8_t input_sound;
} td_monitor_state_t;

typedef struct {
    uint32_t t;                                  /* index of this inference (1-based) */
    int32_t raw[TD_SCORE_COUNT];                 /* raw statistics */
    int32_t z[TD_SCORE_COUNT];                   /* standardized increments, Q12 */
    int32_t cusum[TD_SCORE_COUNT];               /* CUSUM after this inference, Q12 */
    uint32_t alarms;                             /* latched alarms | live warnings */
    uint32_t alarm_time;                         /* first latched alarm, 0 if none */
    uint32_t change_time;                        /* its estimated change point, 0 if none */
    uint32_t moved[TD_MONITOR_MASK_WORDS];       /* channels that moved, now */
    uint32_t moved_at_alarm[TD_MONITOR_MASK_WORDS]; /* ... when DATA_DRIFT latched */
    int32_t predicted;                           /* argmax, first of ties */
    int32_t confidence;                          /* max probability, 1/256 units (0..255) */
    int32_t entropy_q16;                         /* this inference's entropy, Q16 nats */
    int32_t confidence_ewma_q16;
    int32_t entropy_ewma_q16;
    int32_t atc_accuracy_q16;                    /* label-free accuracy estimate */
    uint32_t sensor_flags;
} td_monitor_result_t;

typedef struct {
    uint32_t labels;
    uint32_t errors;
    uint32_t p_q16;                              /* smoothed error rate */
    uint32_t s_q16;                              /* its standard deviation */
    uint32_t alarms;                             /* as in td_monitor_result_t */
} td_feedback_result_t;

typedef struct {
    int32_t mean;                                /* floor of the block mean */
    uint32_t variance;                           /* floor of the population variance */
    uint32_t clipped;                            /* samples at or beyond clip_level */
    uint32_t flags;                              /* TD_SENSOR_* conditions and faults */
    uint32_t alarms;
} td_sensor_result_t;

/* What a camera's sensor health keeps of the previous frame. Kept by the camera build beside
 * the monitor state (a microphone build carries none of it); reset with the monitor. */
typedef struct {
    int8_t probes[TD_SENSOR_IMAGE_PROBES];       /* the previous frame's probed values */
    uint32_t frames;                             /* frames since reset (probes valid if > 0) */
} td_sensor_image_t;

/* sizeof(td_monitor_state_t), for the host to report and check; of it, the commissioning
 * reference (sizeof(td_commission_t)), which a build without commissioning could drop. */
uint32_t td_monitor_state_size(void);
uint32_t td_monitor_commission_size(void);

/* Checks the config against this build (version, capacity, table pointers). */
int td_monitor_check_config(const td_monitor_config_t *config);

/* TD_MONITOR_OK if the state is an initialized one for this config (its mark and the ranges
 * its counters keep), else TD_MONITOR_ERR_STATE; every update checks it first. */
int td_monitor_state_check(const td_monitor_state_t *state, const td_monitor_config_t *config);
/* The mark alone, for what runs on every sensor block. */
static inline int td_monitor_state_marked(const td_monitor_state_t *state)
{
    return (state->status & TD_STATE_MARK_MASK) == TD_STATE_MARK;
}

/* Checks the config and clears the state: the same as td_monitor_reset after a valid check.
 * A macro, as zlib's deflateInit is: it passes the size of the state as the caller's build
 * sees it, so a library built with other capacities refuses (TD_MONITOR_ERR_BUILD) instead
 * of writing past the caller's state. */
#define td_monitor_init(state, config) \
    td_monitor_init_checked((state), (config), (uint32_t)sizeof(td_monitor_state_t))
int td_monitor_init_checked(td_monitor_state_t *state, const td_monitor_config_t *config, uint32_t state_size);

/* Back to the reference: EWMAs at the reference, CUSUMs at zero, alarms cleared. */
void td_monitor_reset(td_monitor_state_t *state, const td_monitor_config_t *config);

/* One inference: summary[n_summary] of the input, probs[n_classes] int8 softmax output
 * (scale 1/256, zero point -128). `out` may be NULL. */
int td_monitor_update(td_monitor_state_t *state, const td_monitor_config_t *config,
                      const int16_t *summary, const int8_t *probs, td_monitor_result_t *out);

/* True label of an earlier inference, for the error-rate test. `out` may be NULL. */
int td_monitor_label_feedback(td_monitor_state_t *state, const td_monitor_config_t *config,
                              int32_t predicted, int32_t true_label, td_feedback_result_t *out);

/* A block of raw PCM (1..TD_SENSOR_MAX_BLOCK samples) for sensor health. `out` may be NULL. */
int td_sensor_update(td_monitor_state_t *state, const td_monitor_config_t *config,
                     const int16_t *pcm, uint32_t n_samples, td_sensor_result_t *out);
/* A camera frame's int8 values (pixels minus 128, n_values = height x width x 3, at least
 * TD_SENSOR_IMAGE_PROBES) for sensor health: saturated share (CLIPPING), mean (DC_OFFSET),
 * a repeat of the previous frame (STUCK), a flat frame (SILENCE). `out` may be NULL. */
int td_sensor_image_update(td_monitor_state_t *state, const td_monitor_config_t *config,
                           td_sensor_image_t *camera, const int8_t *pixels, uint32_t n_values,
                           td_sensor_result_t *out);
/* Forget the previous frame (with td_monitor_reset). */
void td_sensor_image_reset(td_sensor_image_t *camera);
/* Shared by both: one block's condition bits into the runs, faults latched, flags and `out`. */
void td_sensor_conditions_update(td_monitor_state_t *state, const td_monitor_config_t *config,
                                 uint32_t conditions, td_sensor_result_t *out);

/* Per-channel mean over frames of int8 features [n_frames][n_channels], times
 * 2^TD_SUMMARY_FRAC_BITS, rounded half up: the input summary of the keyword spotter. */
int td_summarize_frames(const int8_t *features, uint32_t n_frames, uint32_t n_channels,
                        int16_t *summary);

/* At-floor counts of int8 features [n_frames][n_channels]: per group of `group` adjacent
 * channels, the values at -128 over the frames, times 2^TD_SUMMARY_FRAC_BITS; writes
 * n_channels / group values (see td_summarize_floor.c). n_frames x group at most
 * TD_SUMMARY_FLOOR_MAX_VALUES. For a front end that clips quiet bins to the floor, as
 * microWakeWord's does, beside the channel means. */
#define TD_SUMMARY_FLOOR_MAX_VALUES 255u
int td_summarize_floor(const int8_t *features, uint32_t n_frames, uint32_t n_channels, uint32_t group,
                       int16_t *counts);

/* Loudness of an inference's new audio: log2(energy + 1) x 2^TD_SUMMARY_FRAC_BITS (Mitchell's
 * approximation, see td_summarize_level.c), energy = the sum over its sensor blocks of
 * variance x samples (td_sensor_result_t), saturated at TD_SUMMARY_LEVEL_MAX_ENERGY. For a
 * front end whose gain control hides the level from its features, beside their summary. */
#define TD_SUMMARY_LEVEL_MAX_ENERGY ((uint64_t)1 << 48)
int16_t td_summarize_level(uint64_t energy);

/* Spectral tilt of an inference's new audio (see td_summarize_tilt.c): the level of its
 * slope energy minus the level of its energy (td_summarize_level, x 2^TD_SUMMARY_FRAC_BITS).
 * The slope energy of a block is the sum of its squared sample-to-sample differences, the
 * first against `previous` (the sample before the block; the block's own first sample when
 * a stream starts); blocks of up to 2^16 samples. */
uint64_t td_slope_energy(const int16_t *pcm, uint32_t n_samples, int16_t previous);
int16_t td_summarize_tilt(uint64_t slope_energy, uint64_t energy);

/* Quiet level of a stream (see td_summarize_quiet.c): the lowest of the last
 * TD_SUMMARY_QUIET_SPAN loudness values (td_summarize_level) given to td_summarize_quiet,
 * this one included; td_quiet_reset when a stream starts. 16 inferences of a wake-word model
 * are 0.48 s of audio. */
#define TD_SUMMARY_QUIET_SPAN 16u
typedef struct {
    int16_t levels[TD_SUMMARY_QUIET_SPAN];
    uint32_t next;   /* where the next level goes */
    uint32_t filled; /* levels held, up to TD_SUMMARY_QUIET_SPAN */
} td_quiet_t;
void td_quiet_reset(td_quiet_t *quiet);
int16_t td_summarize_quiet(td_quiet_t *quiet, int16_t level);

/* Summary of a camera model's int8 input [height][width][3] (see td_summarize_image.c):
 * per block of a grid x grid split, each colour channel's mean; then each channel's
 * standard deviation; then each channel's mean absolute neighbour difference (sharpness),
 * all times 2^TD_SUMMARY_FRAC_BITS, rounded half up (the deviation floored); then each
 * channel's crispness (second over first differences, Q12). Writes
 * TD_SUMMARY_IMAGE_LENGTH(grid) values; height x width at most 65535 pixels. */
#define TD_SUMMARY_IMAGE_LENGTH(grid) (3u * (grid) * (grid) + 9u)
int td_summarize_image(const int8_t *pixels, uint32_t height, uint32_t width, uint32_t grid,
                       int16_t *summary);

/* Commissioning: 1 while this inference only learns the device's reference. */
int td_monitor_commissioning(const td_monitor_state_t *state, const td_monitor_config_t *config);

/* The device's own reference, learned: 1 once commissioning has finished (state->commission
 * then holds it, td_monitor_commission_size() bytes, for the application to keep across
 * power cycles). */
int td_monitor_commissioned(const td_monitor_state_t *state, const td_monitor_config_t *config);

/* Takes a reference kept from an earlier boot instead of learning one: right after init
 * (or a reset), so that a reboot in the middle of a drift does not learn the drift as
 * normal. TD_MONITOR_ERR_ARG, and the state unchanged, unless `kept` is a finished
 * reference for this config within the ranges commissioning gives (a record torn or of
 * another build). */
int td_monitor_commission_restore(td_monitor_state_t *state, const td_monitor_config_t *config,
                                  const td_commission_t *kept);

/* Internal steps, one file each, exposed for unit tests. */
void td_monitor_moments(td_monitor_state_t *state, const td_monitor_config_t *config,
                        const int16_t *summary, int32_t predicted, int32_t *raw_mean, int32_t *raw_var,
                        uint32_t *moved);
/* The inference's answer (predicted class, confidence, entropy) into out, and into the
 * running displays of them (confidence, entropy, ATC accuracy estimate). */
void td_monitor_answer(td_monitor_state_t *state, const td_monitor_config_t *config, const int8_t *probs,
                       td_monitor_result_t *out);
void td_monitor_outputs(td_monitor_state_t *state, const td_monitor_config_t *config,
                        const td_monitor_result_t *answer, int32_t *raw);
uint32_t td_monitor_decide(td_monitor_state_t *state, const td_monitor_config_t *config,
                           const int32_t *raw, int32_t *z, const uint32_t *moved);
void td_monitor_latch(td_monitor_state_t *state, uint32_t alarm, uint32_t change_time);
/* The same, dated `alarm_time` rather than the monitor's t: sensor health runs on the blocks
 * of the inference still to come (td_monitor_update counts it), so it dates by t + 1. */
void td_monitor_latch_at(td_monitor_state_t *state, uint32_t alarm, uint32_t alarm_time, uint32_t change_time);
/* The latched alarms | live warnings << TD_WARNING_SHIFT: a score at its warning level, the
 * error-rate test in its warning zone, a sensor half way to a fault. */
uint32_t td_monitor_live_alarms(const td_monitor_state_t *state, const td_monitor_config_t *config);
/* The error-rate test's best (p, s) at a reset (td_monitor_feedback.c). */
void td_monitor_ddm_seed(td_monitor_state_t *state, const td_monitor_config_t *config);
void td_monitor_commission_finish(td_monitor_state_t *state, const td_monitor_config_t *config);
/* One decided inference's centred confidence and entropy (raw), learned into their centres
 * where bit i of `calm` is set (as for the spread). */
void td_monitor_commission_refine(td_monitor_state_t *state, const td_monitor_config_t *config, const int32_t *raw,
                                  uint32_t calm);
/* Long-run spread (td_monitor_spread.c): forget it (td_monitor_init); drop the block under
 * way (td_monitor_reset); z as the CUSUM takes it; one decided inference's z of every score,
 * learned where bit i of `calm` is set (score i below its warning level, its alarm not
 * latched). */
void td_monitor_spread_init(td_monitor_state_t *state, const td_monitor_config_t *config);
void td_monitor_spread_restart(td_monitor_state_t *state);
int32_t td_monitor_spread_apply(const td_monitor_state_t *state, const td_score_params_t *params,
                                uint32_t score, int32_t z);
/* Sensors that fail on and off (td_sensor_intermittent.c): the dead share of one inference's
 * sensor blocks (Q12) into the CUSUM of dead time, latching SENSOR_FAULT at its limit. */
void td_sensor_intermittent(td_monitor_state_t *state, const td_monitor_config_t *config, int32_t dead_q12);
void td_monitor_spread_learn(td_monitor_state_t *state, const td_monitor_config_t *config, const int32_t *z,
                             uint32_t calm);

#ifdef __cplusplus
}
#endif

#endif /* TD_MONITOR_H */
