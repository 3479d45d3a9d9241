/*
 * nullsmtpd: the stand-in for qmail-smtpd behind tcpserver, for the
 * checkrelay benchmark. It does what qmail-smtpd does first with
 * RELAYCLIENT (looks at it) and nothing else: one line on stdout (the
 * connection, under tcpserver), "220 relay=yes" or "220 relay=no", and
 * exit. The baseline runs it straight from tcpserver; the measured path
 * runs `authbridge checkrelay nullsmtpd`, so the difference is what
 * checkrelay costs a connection.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(void)
{
    static const char yes[] = "220 relay=yes\r\n", no[] = "220 relay=no\r\n";
    const char *line = getenv("RELAYCLIENT") ? yes : no;
    size_t len = getenv("RELAYCLIENT") ? sizeof(yes) - 1 : sizeof(no) - 1;

    return write(1, line, len) == (ssize_t)len ? 0 : 1;
}
