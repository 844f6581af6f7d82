*** Settings ***
Documentation     tinydrift's firmware on the boards Renode models: the hello line, the echo
...               and the exit command, exactly as tests/test_emulator.py checks them on
...               QEMU's mps2-an386. Run with `renode-test firmware/renode/tinydrift.robot`
...               after building the two envs (see README.md).
Suite Setup       Setup
Suite Teardown    Teardown
Test Setup        Reset Emulation
Test Teardown     Test Teardown
Resource          ${RENODEKEYWORDS}

*** Variables ***
${NANO33BLE_ELF}      ${CURDIR}/../.pio/build/nano33ble_renode/firmware.elf
${DISCO_F407VG_ELF}   ${CURDIR}/../.pio/build/disco_f407vg/firmware.elf
${ESC}                \x1b

*** Keywords ***
Boot
    [Arguments]    ${script}    ${elf}    ${uart}
    Execute Command           $elf=@${elf}
    Execute Script            ${CURDIR}/${script}
    Create Terminal Tester    ${uart}    timeout=30
    Start Emulation

Says Hello, Echoes And Exits
    [Arguments]    ${board}
    Wait For Line On Uart     tinydrift hello board=${board}
    Wait For Line On Uart     count 3
    # "ping" comes back, then ESC c prints the next counter line right after it.
    Write Line To Uart        ping${ESC}c    waitForEcho=false
    Wait For Line On Uart     pingcount 4
    # ESC x '*' (42): the firmware says goodbye with the code it would exit with.
    Write Line To Uart        ${ESC}x*    waitForEcho=false
    Wait For Line On Uart     bye code=42

*** Test Cases ***
Should Boot On Arduino Nano 33 BLE
    Boot    arduino_nano_33_ble.resc    ${NANO33BLE_ELF}    sysbus.uart0
    Says Hello, Echoes And Exits    nano33ble

Should Boot On STM32F4 Discovery
    Boot    stm32f4_discovery.resc    ${DISCO_F407VG_ELF}    sysbus.usart2
    Says Hello, Echoes And Exits    disco_f407vg
