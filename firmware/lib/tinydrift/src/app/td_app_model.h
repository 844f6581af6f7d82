/* Which generated model the application runs.
 *
 * `tinydrift export --name NAME` writes td_model_NAME.{h,c}, td_monitor_config_NAME.h and
 * td_reference_NAME.h into the model's include/ folder. The build names the model with
 * -DTD_APP_MODEL=NAME -DTD_APP_MODEL_UPPER=NAME_IN_CAPITALS (the PlatformIO extra script
 * firmware/scripts/tinydrift_build.py reads them from the folder); both default to the
 * project's model, kws. Everything model-specific the application uses goes through the
 * TD_APP_M_* names below, so no other file spells the model's name.
 */
#ifndef TD_APP_MODEL_H
#define TD_APP_MODEL_H

#ifndef TD_APP_MODEL
#define TD_APP_MODEL kws
#define TD_APP_MODEL_UPPER KWS
#endif
#ifndef TD_APP_MODEL_UPPER
#error "define TD_APP_MODEL_UPPER (the model's name in capitals) with TD_APP_MODEL"
#endif

#define TD_APP_PASTE_(a, b, c) a##b##c
#define TD_APP_PASTE(a, b, c) TD_APP_PASTE_(a, b, c)
#define TD_APP_STRING_(x) #x
#define TD_APP_STRING(x) TD_APP_STRING_(x)
/* "td_model_kws.h" from td_model_ and kws: the name is expanded, then stringized. */
#define TD_APP_HEADER_(prefix, name) TD_APP_STRING(prefix##name.h)
#define TD_APP_HEADER(prefix, name) TD_APP_HEADER_(prefix, name)

#define TD_APP_MODEL_HEADER TD_APP_HEADER(td_model_, TD_APP_MODEL)
#define TD_APP_MONITOR_CONFIG_HEADER TD_APP_HEADER(td_monitor_config_, TD_APP_MODEL)
#define TD_APP_REFERENCE_HEADER TD_APP_HEADER(td_reference_, TD_APP_MODEL)

/* Functions and data of the generated files. */
#define TD_APP_M_INPUT TD_APP_PASTE(td_, TD_APP_MODEL, _input)
#define TD_APP_M_OUTPUT TD_APP_PASTE(td_, TD_APP_MODEL, _output)
#define TD_APP_M_INVOKE TD_APP_PASTE(td_, TD_APP_MODEL, _invoke)
#define TD_APP_M_MONITOR_CONFIG TD_APP_PASTE(td_monitor_config_, TD_APP_MODEL, )
#define TD_APP_M_MODEL_ID TD_APP_PASTE(td_, TD_APP_MODEL, _model_id)
#define TD_APP_M_LABELS TD_APP_PASTE(td_, TD_APP_MODEL, _labels)
#define TD_APP_M_RESET TD_APP_PASTE(td_, TD_APP_MODEL, _reset)

/* Constants of the generated files. TD_APP_M_STREAMING is 1 for a streaming model and, the
 * name being undefined otherwise, 0 in #if for any other. */
#define TD_APP_M_STREAMING TD_APP_PASTE(TD_, TD_APP_MODEL_UPPER, _STREAMING)
#define TD_APP_M_PROBABILITY_CUTOFF TD_APP_PASTE(TD_, TD_APP_MODEL_UPPER, _PROBABILITY_CUTOFF)
#define TD_APP_M_SLIDING_WINDOW TD_APP_PASTE(TD_, TD_APP_MODEL_UPPER, _SLIDING_WINDOW)
#define TD_APP_M_FEATURE_STEP_MS TD_APP_PASTE(TD_, TD_APP_MODEL_UPPER, _FEATURE_STEP_MS)
#define TD_APP_M_INPUT_SIZE TD_APP_PASTE(TD_, TD_APP_MODEL_UPPER, _INPUT_SIZE)
#define TD_APP_M_OUTPUT_SIZE TD_APP_PASTE(TD_, TD_APP_MODEL_UPPER, _OUTPUT_SIZE)
#define TD_APP_M_MODEL_HASH TD_APP_PASTE(TD_, TD_APP_MODEL_UPPER, _MODEL_HASH)
#define TD_APP_M_MODEL_ID_BYTES TD_APP_PASTE(TD_, TD_APP_MODEL_UPPER, _MODEL_ID_BYTES)
#define TD_APP_M_NUM_CLASSES TD_APP_PASTE(TD_, TD_APP_MODEL_UPPER, _NUM_CLASSES)
#define TD_APP_M_NUM_FRAMES TD_APP_PASTE(TD_, TD_APP_MODEL_UPPER, _NUM_FRAMES)
#define TD_APP_M_NUM_CHANNELS TD_APP_PASTE(TD_, TD_APP_MODEL_UPPER, _NUM_CHANNELS)
/* A camera model's input (its reference header defines them; 0 in #if for any other). */
#define TD_APP_M_IMAGE_HEIGHT TD_APP_PASTE(TD_, TD_APP_MODEL_UPPER, _IMAGE_HEIGHT)
#define TD_APP_M_IMAGE_WIDTH TD_APP_PASTE(TD_, TD_APP_MODEL_UPPER, _IMAGE_WIDTH)
#define TD_APP_M_IMAGE_CHANNELS TD_APP_PASTE(TD_, TD_APP_MODEL_UPPER, _IMAGE_CHANNELS)
#define TD_APP_M_SUMMARY_GRID TD_APP_PASTE(TD_, TD_APP_MODEL_UPPER, _SUMMARY_GRID)

#endif /* TD_APP_MODEL_H */
