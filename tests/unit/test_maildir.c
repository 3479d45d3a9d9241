/*
 * Maildir scanning and locking (pop3d/maildir.c) on a real temporary
 * folder: the snapshot, sizes and UIDLs, the new/ -> cur/ move, locks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pop3d/maildir.h"

#define LOCK "test.lock"

static char top[256], root[300];

static void put(const char *sub, const char *name, const char *body)
{
    char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s/%s", root, sub, name);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(body, f);
    fclose(f);
}

static int count_in(const char *sub)
{
    char path[512];
    struct dirent *de;
    int n = 0;
    DIR *d;

    snprintf(path, sizeof(path), "%s/%s", root, sub);
    d = opendir(path);
    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

static int setup(void **state)
{
    char path[512];

    (void)state;
    snprintf(top, sizeof(top), "/tmp/ab-maildir-XXXXXX");
    assert_non_null(mkdtemp(top));
    snprintf(root, sizeof(root), "%s/Maildir", top);
    mkdir(root, 0700);
    for (const char *const *s = (const char *const[]){ "cur", "new", "tmp", NULL };
         *s; s++) {
        snprintf(path, sizeof(path), "%s/%s", root, *s);
        mkdir(path, 0700);
    }
    maildir_set_hostname("unit-host");
    return 0;
}

static int teardown(void **state)
{
    char cmd[600];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
    return system(cmd) == 0 ? 0 : -1;
}

static struct mailbox *open_ok(void)
{
    struct mailbox *mb = NULL;
    char err[256];

    assert_int_equal(maildir_open(root, LOCK, &mb, err, sizeof(err)), MBOX_OK);
    return mb;
}

static void snapshot_is_sorted_by_delivery_with_wire_sizes(void **state)
{
    struct mailbox *mb;

    (void)state;
    put("new", "1700000010.B.host", "b\nb\n");                /* 4 -> 6 */
    put("new", "999999999.A.host", "a\n");                    /* older */
    put("cur", "1700000020.C.host,S=3,W=99:2,S", "c\r\n");    /* W wins */
    mb = open_ok();
    assert_int_equal(mb->count, 3);
    assert_string_equal(mb->msgs[0].uidl, "999999999.A.host");
    assert_string_equal(mb->msgs[1].uidl, "1700000010.B.host");
    assert_string_equal(mb->msgs[2].uidl, "1700000020.C.host");
    assert_int_equal(mb->msgs[0].size, 3);
    assert_int_equal(mb->msgs[1].size, 6);
    assert_int_equal(mb->msgs[2].size, 99);
    assert_int_equal(mb->total, 108);
    maildir_close(mb);
}

static void new_mail_moves_to_cur_with_sizes_in_the_name(void **state)
{
    struct mailbox *mb;

    (void)state;
    put("new", "1700000030.D.host", "x\ny\n");
    mb = open_ok();
    assert_string_equal(mb->msgs[0].name, "1700000030.D.host,S=4,W=6:2,");
    assert_int_equal(count_in("new"), 0);
    assert_int_equal(count_in("cur"), 1);
    maildir_close(mb);
    mb = open_ok();                /* the second scan reads the name only */
    assert_int_equal(mb->msgs[0].size, 6);
    maildir_close(mb);
}

static void dot_files_are_ignored(void **state)
{
    struct mailbox *mb;

    (void)state;
    put("cur", ".hidden", "x\n");
    put("new", ".tmpfile", "x\n");
    mb = open_ok();
    assert_int_equal(mb->count, 0);
    maildir_close(mb);
}

static void uidl_falls_back_to_a_hash_for_odd_names(void **state)
{
    char out[POP3_UIDL_MAX + 1], long_name[200];

    (void)state;
    maildir_uidl("1700.X.host,S=5:2,S", out);
    assert_string_equal(out, "1700.X.host");
    memset(long_name, 'n', 100);
    long_name[100] = '\0';
    maildir_uidl(long_name, out);
    assert_int_equal(strlen(out), 17);
    assert_int_equal(out[0], 'h');
    maildir_uidl("with space", out);
    assert_int_equal(out[0], 'h');
}

static void second_open_is_in_use_until_closed(void **state)
{
    struct mailbox *mb = open_ok(), *other = NULL;
    char err[256], lock[512];

    (void)state;
    assert_int_equal(maildir_open(root, LOCK, &other, err, sizeof(err)),
                     MBOX_IN_USE);
    maildir_close(mb);
    snprintf(lock, sizeof(lock), "%s/%s", root, LOCK);
    assert_int_equal(access(lock, F_OK), -1);
    maildir_close(open_ok());
}

static ino_t ino_of(const char *name)
{
    char path[512];
    struct stat st;

    snprintf(path, sizeof(path), "%s/%s", root, name);
    if (stat(path, &st) < 0)
        return 0;
    return st.st_ino;
}

static int files_in_root(void)
{
    return count_in(".") - 3;      /* cur, new, tmp */
}

static void lock_holds_the_token_and_its_inode_is_reused(void **state)
{
    struct mailbox *mb = open_ok(), *other = NULL;
    char err[256], path[512], body[400];
    ino_t first = ino_of(LOCK);
    ssize_t n;
    int fd;

    (void)state;
    assert_int_not_equal(first, 0);
    snprintf(path, sizeof(path), "%s/%s", root, LOCK);
    fd = open(path, O_RDONLY);
    n = read(fd, body, sizeof(body) - 1);
    close(fd);
    assert_true(n > 0);
    body[n] = '\0';
    assert_string_equal(body, mb->lock_token);
    assert_int_equal(files_in_root(), 1);     /* the lock alone */

    /* A loser gives back what it prepared and leaves nothing behind. */
    assert_int_equal(maildir_open(root, LOCK, &other, err, sizeof(err)),
                     MBOX_IN_USE);
    assert_int_equal(ino_of(LOCK), first);
    assert_int_equal(files_in_root(), 2);     /* the lock, LOCK.idle */

    /* Released, the lock becomes the idle inode; the next one takes an
     * idle inode, so no inode is created for it. */
    maildir_close(mb);
    assert_int_equal(ino_of(LOCK), 0);
    assert_int_equal(files_in_root(), 1);     /* LOCK.idle */
    assert_int_not_equal(ino_of(LOCK ".idle"), 0);
    {
        ino_t idle = ino_of(LOCK ".idle");
        mb = open_ok();
        assert_int_equal(ino_of(LOCK), idle);
        assert_int_equal(files_in_root(), 1);
        fd = open(path, O_RDONLY);
        n = read(fd, body, sizeof(body) - 1);
        close(fd);
        body[n > 0 ? n : 0] = '\0';
        assert_string_equal(body, mb->lock_token);
        maildir_close(mb);
    }
}

/* Whoever can write the Maildir can plant the idle file: a symbolic or
 * hard link to a file pop3d may write must never get the token. */
static void planted_idle_links_are_not_followed(void **state)
{
    char victim[512], idle[512], body[64];
    struct mailbox *mb;
    FILE *f;

    (void)state;
    snprintf(victim, sizeof(victim), "%s/victim", top);
    snprintf(idle, sizeof(idle), "%s/%s.idle", root, LOCK);
    f = fopen(victim, "w");
    assert_non_null(f);
    fputs("precious\n", f);
    fclose(f);
    for (int kind = 0; kind < 2; kind++) {
        assert_int_equal(kind == 0 ? symlink(victim, idle) : link(victim, idle),
                         0);
        mb = open_ok();
        maildir_close(mb);
        f = fopen(victim, "r");
        assert_non_null(f);
        assert_non_null(fgets(body, sizeof(body), f));
        fclose(f);
        assert_string_equal(body, "precious\n");
        unlink(idle);                 /* the released lock, now idle */
        assert_int_equal(files_in_root(), 0);
    }
}

static void lock_of_a_dead_process_on_this_host_is_stale(void **state)
{
    pid_t pid = fork();
    char body[64];

    (void)state;
    if (pid == 0)
        _exit(0);
    waitpid(pid, NULL, 0);
    snprintf(body, sizeof(body), "unit-host %d 1\n", (int)pid);
    put(".", LOCK, body);
    maildir_close(open_ok());
}

static void fresh_lock_of_another_host_holds_old_one_does_not(void **state)
{
    struct mailbox *mb = NULL;
    char err[256], lock[512];
    struct timespec old[2] = { { time(NULL) - POP3_LOCK_STALE - 5, 0 },
                               { time(NULL) - POP3_LOCK_STALE - 5, 0 } };

    (void)state;
    put(".", LOCK, "elsewhere 1 1\n");
    assert_int_equal(maildir_open(root, LOCK, &mb, err, sizeof(err)),
                     MBOX_IN_USE);
    snprintf(lock, sizeof(lock), "%s/%s", root, LOCK);
    utimensat(AT_FDCWD, lock, old, 0);
    maildir_close(open_ok());
}

static void update_removes_only_marked_messages(void **state)
{
    struct mailbox *mb;
    unsigned removed;
    char err[256];

    (void)state;
    put("new", "1.A.h", "1\n");
    put("new", "2.B.h", "2\n");
    put("new", "3.C.h", "3\n");
    mb = open_ok();
    mb->msgs[0].deleted = mb->msgs[2].deleted = true;
    assert_int_equal(maildir_update(mb, &removed, err, sizeof(err)), 0);
    assert_int_equal(removed, 2);
    maildir_close(mb);
    assert_int_equal(count_in("cur"), 1);
    mb = open_ok();
    assert_string_equal(mb->msgs[0].uidl, "2.B.h");
    maildir_close(mb);
}

static void update_follows_a_flag_rename(void **state)
{
    struct mailbox *mb;
    unsigned removed;
    char err[256], from[512], to[600];

    (void)state;
    put("new", "5.E.h", "e\n");
    mb = open_ok();
    snprintf(from, sizeof(from), "%s/cur/%s", root, mb->msgs[0].name);
    snprintf(to, sizeof(to), "%sRS", from);
    assert_int_equal(rename(from, to), 0);
    int fd = maildir_open_message(mb, 0);
    assert_true(fd >= 0);
    close(fd);
    mb->msgs[0].deleted = true;
    assert_int_equal(maildir_update(mb, &removed, err, sizeof(err)), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(count_in("cur"), 0);
    maildir_close(mb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            snapshot_is_sorted_by_delivery_with_wire_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(
            new_mail_moves_to_cur_with_sizes_in_the_name, setup, teardown),
        cmocka_unit_test_setup_teardown(dot_files_are_ignored, setup, teardown),
        cmocka_unit_test(uidl_falls_back_to_a_hash_for_odd_names),
        cmocka_unit_test_setup_teardown(second_open_is_in_use_until_closed,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            lock_holds_the_token_and_its_inode_is_reused, setup, teardown),
        cmocka_unit_test_setup_teardown(
            planted_idle_links_are_not_followed, setup, teardown),
        cmocka_unit_test_setup_teardown(
            lock_of_a_dead_process_on_this_host_is_stale, setup, teardown),
        cmocka_unit_test_setup_teardown(
            fresh_lock_of_another_host_holds_old_one_does_not, setup, teardown),
        cmocka_unit_test_setup_teardown(update_removes_only_marked_messages,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(update_follows_a_flag_rename, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
