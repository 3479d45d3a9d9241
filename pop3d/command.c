#include "pop3d/command.h"
#include "authbridge/util.h"

#include <string.h>

static bool is_alpha(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

int pop3_parse(char *line, struct pop3_cmd *cmd)
{
    size_t k = 0;
    char *p = line;

    memset(cmd, 0, sizeof(*cmd));
    while (is_alpha(*p) && k < 4) {
        cmd->keyword[k++] = (char)(*p >= 'a' ? *p - 32 : *p);
        p++;
    }
    if (k < 3 || (*p != '\0' && *p != ' '))
        return -1;
    cmd->rest = *p == ' ' ? p + 1 : p;
    return 0;
}

int pop3_split_args(struct pop3_cmd *cmd, int max)
{
    char *p = cmd->rest, *end = p + strlen(p);

    /* Trailing spaces are tolerated (some clients send "LIST "); empty
     * arguments between spaces are not. */
    while (end > p && end[-1] == ' ')
        *--end = '\0';
    while (*p != '\0') {
        if (cmd->argc == max || cmd->argc == POP3_MAX_ARGS || *p == ' ')
            return -1;
        cmd->argv[cmd->argc++] = p;
        while (*p != '\0' && *p != ' ')
            p++;
        if (*p == ' ')
            *p++ = '\0';
    }
    return 0;
}

int pop3_msgno(const char *arg, size_t count, size_t *index)
{
    uint64_t n;

    if (ab_parse_uint(arg, 1, UINT32_MAX, &n) < 0 || n > count)
        return -1;
    *index = (size_t)(n - 1);
    return 0;
}

int pop3_linecount(const char *arg, uint64_t *n)
{
    return ab_parse_uint(arg, 0, UINT32_MAX, n);
}
