/* Semihosting on mps2-an386 under QEMU: the command line and host files.
 *
 * QEMU's `-semihosting-config enable=on,target=native,arg=...` hands the firmware a command
 * line (SYS_GET_CMDLINE) and lets it read host files (SYS_OPEN, SYS_READ): the emulated
 * board's options and its microphone come from there, without the slow UART. */
#include <stddef.h>
#include <string.h>

#include "td_mps2_an386.h"
#include "td_port.h"

#define TD_MPS2_CMDLINE_BYTES 1024u
#define TD_MPS2_MAX_OPTIONS 16u

uint32_t td_mps2_semihosting(uint32_t operation, const void *parameters)
{
    register uint32_t r0 __asm("r0") = operation;
    register const void *r1 __asm("r1") = parameters;
    __asm volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

/* The command line, split in place into NUL-terminated `name=value` words. */
static char td_mps2_cmdline[TD_MPS2_CMDLINE_BYTES];
static const char *td_mps2_words[TD_MPS2_MAX_OPTIONS];
static size_t td_mps2_word_count;
static bool td_mps2_cmdline_read;

static void td_mps2_read_cmdline(void)
{
    td_mps2_cmdline_read = true;
    uint32_t parameters[2] = {(uint32_t)(uintptr_t)td_mps2_cmdline, TD_MPS2_CMDLINE_BYTES - 1u};
    if (td_mps2_semihosting(TD_SEMIHOSTING_SYS_GET_CMDLINE, parameters) != 0u) {
        return; /* no command line: no options */
    }
    const size_t length = parameters[1] < TD_MPS2_CMDLINE_BYTES ? parameters[1] : TD_MPS2_CMDLINE_BYTES - 1u;
    td_mps2_cmdline[length] = '\0';
    char *cursor = td_mps2_cmdline;
    while (*cursor != '\0' && td_mps2_word_count < TD_MPS2_MAX_OPTIONS) {
        while (*cursor == ' ') {
            *cursor++ = '\0';
        }
        if (*cursor == '\0') {
            break;
        }
        td_mps2_words[td_mps2_word_count++] = cursor;
        while (*cursor != ' ' && *cursor != '\0') {
            cursor++;
        }
    }
}

const char *td_mps2_option(const char *name)
{
    if (!td_mps2_cmdline_read) {
        td_mps2_read_cmdline();
    }
    const size_t length = strlen(name);
    for (size_t i = 0; i < td_mps2_word_count; ++i) {
        const char *word = td_mps2_words[i];
        if (strncmp(word, name, length) == 0 && word[length] == '=') {
            return word + length + 1;
        }
    }
    return NULL;
}
