"""The drift monitor's host side (DESIGN §4): the bit-exact twin of the firmware's monitor
(firmware/lib/tinydrift/src/monitor), reference statistics, ARL0 calibration, the
generated C header, and evaluation on drift scenarios.

    config      MonitorConfig, the mirror of td_monitor_config_t; constants of td_monitor.h
    twin        MonitorTwin: the same integers as the C, over many streams at once
    reference   reference_stats(summaries, probs, labels), build_config(stats, ...)
    calibrate   calibrate_thresholds(...) for a target ARL0; measure_arl0(...) to check it
    header      emit_monitor_config_h(config, path_or_name), config_hash
    streams     block bootstrap over recordings/speakers, run_streams
    evaluate    measure_detection: delays, change-time errors, alarm types, moved channels
    heldout     heldout_arl0: calibrate on one sample, check on another, both ways and splits
    synthetic   structured synthetic inputs and drift scenarios, random configs and events
    c_monitor   the firmware's C built for this host (ctypes), for verification
    cost        instructions per call on the emulated Cortex-M4
    cli_drift   `tinydrift drift ...` commands
"""
