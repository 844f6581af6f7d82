/* gemmlowp's fixed-point transcendentals as TFLite Micro's integer SOFTMAX and LOGISTIC use
 * them (fixedpoint.h: exp_on_negative_values, one_over_one_plus_x_for_x_in_0_1), shared so
 * the two kernels round alike. A Qm.n value is an int32_t with m integer and n = 31 - m
 * fractional bits; Q0.31's 1.0 is INT32_MAX (saturated). */
#ifndef TD_FIXEDPOINT_H
#define TD_FIXEDPOINT_H

#include <stdint.h>

#include "td_requant.h"

#define TD_Q0_ONE INT32_MAX

/* Fixed-point product of two values: gemmlowp's operator* (the integer bits add up). */
static inline int32_t td_fixed_mul(int32_t a, int32_t b)
{
    return td_saturating_rounding_doubling_high_mul(a, b);
}

/* (a + b) / 2 rounded half away from zero, without overflow. */
static inline int32_t td_rounding_half_sum(int32_t a, int32_t b)
{
    const int64_t sum = (int64_t)a + (int64_t)b;
    const int64_t sign = sum >= 0 ? 1 : -1;
    return (int32_t)((sum + sign) / 2);
}

/* exp(a) for a in [-1/4, 0), Q0.31 in and out: a 4th-order Taylor series around -1/8. */
static inline int32_t td_exp_on_interval_between_negative_one_quarter_and_0_excl(int32_t a)
{
    const int32_t exp_minus_one_eighth = 1895147668;
    const int32_t one_third = 715827883;
    const int32_t x = a + (1 << 28); /* a + 1/8 */
    const int32_t x2 = td_fixed_mul(x, x);
    const int32_t x3 = td_fixed_mul(x2, x);
    const int32_t x4 = td_fixed_mul(x2, x2);
    const int32_t x4_over_4 = td_rounding_divide_by_pot(x4, 2);
    const int32_t x4_over_24_plus_x3_over_6_plus_x2_over_2 =
        td_rounding_divide_by_pot(td_fixed_mul(x4_over_4 + x3, one_third) + x2, 1);
    return exp_minus_one_eighth +
           td_fixed_mul(exp_minus_one_eighth, x + x4_over_24_plus_x3_over_6_plus_x2_over_2);
}

/* exp(a) for a <= 0 given with `integer_bits` integer bits (1 to 5), result in Q0.31: the
 * fractional quarter by the series above, then one factor exp(-2^k) for each bit k of the
 * rest that the format can hold. */
static inline int32_t td_exp_on_negative_values(int32_t a, int32_t integer_bits)
{
    static const int32_t exp_of_minus_pow2[7] = {
        1672461947, /* exp(-1/4) */
        1302514674, /* exp(-1/2) */
        790015084,  /* exp(-1) */
        290630308,  /* exp(-2) */
        39332535,   /* exp(-4) */
        720401,     /* exp(-8) */
        242,        /* exp(-16) */
    };
    const int32_t fractional_bits = 31 - integer_bits;
    const int32_t one_quarter = (int32_t)1 << (fractional_bits - 2);
    const int32_t mask = one_quarter - 1;
    const int32_t a_mod_quarter_minus_one_quarter = (a & mask) - one_quarter;
    int32_t result = td_exp_on_interval_between_negative_one_quarter_and_0_excl(
        td_saturating_rounding_multiply_by_pot(a_mod_quarter_minus_one_quarter, integer_bits));
    const int32_t remainder = a_mod_quarter_minus_one_quarter - a;
    for (int32_t k = 0; k < 7; ++k) {
        const int32_t exponent = k - 2; /* the factor is exp(-2^exponent) */
        if (integer_bits > exponent && (remainder & ((int32_t)1 << (fractional_bits + exponent)))) {
            result = td_fixed_mul(result, exp_of_minus_pow2[k]);
        }
    }
    return a == 0 ? TD_Q0_ONE : result;
}

/* 1 / (1 + x) for x in [0, 1), Q0.31 in and out: Newton-Raphson on (1 + x) / 2 in Q2.29. */
static inline int32_t td_one_over_one_plus_x_for_x_in_0_1(int32_t a)
{
    const int32_t half_denominator = td_rounding_half_sum(a, TD_Q0_ONE);
    const int32_t constant_48_over_17 = 1515870810;
    const int32_t constant_neg_32_over_17 = -1010580540;
    const int32_t q2_one = 1 << 29;
    int32_t x = constant_48_over_17 + td_fixed_mul(half_denominator, constant_neg_32_over_17);
    for (int32_t i = 0; i < 3; ++i) {
        const int32_t half_denominator_times_x = td_fixed_mul(half_denominator, x);
        const int32_t one_minus_half_denominator_times_x = q2_one - half_denominator_times_x;
        x = x + td_saturating_rounding_multiply_by_pot(td_fixed_mul(x, one_minus_half_denominator_times_x), 2);
    }
    /* x approximates 2 / (1 + a) in Q2.29; halving it is reading it as Q1.30. */
    return td_saturating_rounding_multiply_by_pot(x, 1);
}

#endif /* TD_FIXEDPOINT_H */
