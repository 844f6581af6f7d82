"""The drift monitor's host side: the bit-exact twin of the firmware's monitor
(firmware/lib/tinydrift/src/monitor), reference statistics, ARL0 calibration
and evaluation on drift scenarios.

    config      MonitorConfig, the mirror of td_monitor_config_t; constants of td_monitor.h
    twin        MonitorTwin: the same integers as the C, over many streams at once
    reference   reference_stats(summaries, probs, labels), build_config(stats, ...)
    calibrate   calibrate_thresholds(...) for a target ARL0; measure_arl0(...) to check it
    streams     block bootstrap over recordings/speakers, run_streams
    evaluate    measure_detection: delays, change-time errors, alarm types, moved channels
    heldout     heldout_arl0: calibrate on one sample, check on another, both ways and splits
    synthetic   structured synthetic inputs and drift scenarios, random configs and events

Its C header is emitted by tinydrift.codegen.monitor_header; the C itself runs on this host
through tinydrift.target.host_monitor and on the emulated Cortex-M4 through
tinydrift.target.monitor_cost.
"""
