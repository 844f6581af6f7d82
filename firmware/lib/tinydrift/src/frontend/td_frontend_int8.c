/* micro_speech's integer map from the front end's uint16 output to the model's int8
 * input (tinydrift.frontend.features: uint16_to_int8). Its float training pipeline scaled the
 * output by 1/25.6 into [0, 26]: 256 / 666 = 1 / (25.6 * 26 / 256), rounded half up. */
#include "td_frontend.h"

#define TD_FRONTEND_INT8_SCALE_NUM 256
#define TD_FRONTEND_INT8_SCALE_DEN 666

void td_frontend_raw_to_int8(const uint16_t *raw, int8_t *features, size_t count) {
  size_t i;
  for (i = 0; i < count; ++i) {
    /* At most 65535 * 256 + 333 < 2^31; non-negative, so division floors. */
    int32_t value = ((int32_t)raw[i] * TD_FRONTEND_INT8_SCALE_NUM + TD_FRONTEND_INT8_SCALE_DEN / 2) /
                        TD_FRONTEND_INT8_SCALE_DEN -
                    128;
    if (value > 127) {
      value = 127;
    }
    features[i] = (int8_t)value;
  }
}
