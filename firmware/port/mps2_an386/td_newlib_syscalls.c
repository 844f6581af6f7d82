/* The few system calls newlib-nano needs when portable code uses its stdio (snprintf and
 * friends) on mps2-an386. Console I/O goes through td_port; there is no heap: _sbrk
 * refuses, so an accidental malloc fails visibly instead of growing into the stack.
 * These names are newlib's, not ours, hence no td_ prefix.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "td_port.h"

#undef errno
extern int errno;

int _write(int file, const char *data, int length);
int _read(int file, char *data, int length);
int _close(int file);
int _fstat(int file, struct stat *status);
int _isatty(int file);
int _lseek(int file, int offset, int whence);
void *_sbrk(ptrdiff_t increment);
void _exit(int code);
int _kill(int pid, int signal);
int _getpid(void);

int _write(int file, const char *data, int length)
{
    (void)file;
    if (length <= 0) {
        return 0;
    }
    td_port_write((const uint8_t *)data, (size_t)length);
    return length;
}

int _read(int file, char *data, int length)
{
    (void)file;
    if (length <= 0) {
        return 0;
    }
    size_t count = 0;
    while (count == 0) {
        count = td_port_read((uint8_t *)data, (size_t)length, 1000u);
    }
    return (int)count;
}

int _close(int file)
{
    (void)file;
    errno = EBADF;
    return -1;
}

int _fstat(int file, struct stat *status)
{
    (void)file;
    status->st_mode = S_IFCHR;
    return 0;
}

int _isatty(int file)
{
    (void)file;
    return 1;
}

int _lseek(int file, int offset, int whence)
{
    (void)file;
    (void)offset;
    (void)whence;
    return 0;
}

void *_sbrk(ptrdiff_t increment)
{
    (void)increment;
    errno = ENOMEM;
    return (void *)-1;
}

void _exit(int code)
{
    td_port_exit(code);
}

int _kill(int pid, int signal)
{
    (void)pid;
    (void)signal;
    errno = EINVAL;
    return -1;
}

int _getpid(void)
{
    return 1;
}
