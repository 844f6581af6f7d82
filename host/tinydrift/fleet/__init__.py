"""Fleets: frames of many devices from serial ports through an MQTT 5 broker into PostgreSQL
(docs/fleet.md).

    envelope    the MQTT topic and payload of one device frame (identity + the raw packet)
    mqtt        the one way to make a broker client: MQTT 5, persistent session, broker URLs
    outbox      the gateway's SQLite outbox: a frame leaves it only once the broker has it
    gateway     serial ports (or simulated devices) -> outbox -> MQTT 5, QoS 1
    store       the PostgreSQL schema, its ordered migrations, day partitions, the batch writer
    collector   MQTT (shared subscription) -> PostgreSQL in batches, acknowledged after commit
    dashboard   the fleet at a glance, the alarm map and device timelines, as web pages
    simulate    simulated devices: a whole fleet on the monitor's twin and real model outputs,
                paced into the gateway's outbox; and one made-up board for transport tests
    services    a private mosquitto and PostgreSQL as child processes (tests, `fleet up`)
"""
