"""Fleets: frames of many devices from serial ports through an MQTT 5 broker into PostgreSQL.

    envelope    the MQTT topic and payload of one device frame (identity + the raw packet)
    outbox      the gateway's SQLite outbox: a frame leaves it only once the broker has it
    gateway     serial ports -> outbox -> MQTT 5, QoS 1, persistent session
    schema      the PostgreSQL schema, its ordered migrations, time partitions
    collector   MQTT (shared subscription) -> PostgreSQL in batches, acknowledged after commit
    services    a private mosquitto and PostgreSQL as child processes (tests, `fleet up`)
"""
