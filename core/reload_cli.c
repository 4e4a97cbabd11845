// SPDX-License-Identifier: MIT
/*
 * reload_cli.c - `luadivert reload`: signal the running instance and report
 * whether its policy reloaded, from the status file it writes next to its
 * pid file ("<generation> ok|error <message>").
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "commands.h"
#include "pidfile.h"
#include "rules.h"

static const char usage[] =
	"usage: luadivert reload [--queue N | --pidfile FILE] [--timeout SECONDS]\n"
	"\n"
	"Ask the luadivert running on queue N (default 0) to reload its policy, and\n"
	"wait for the outcome. Exit status 0 when the new policy runs, 1 when it had\n"
	"errors (the old one keeps running) or no instance answered.\n";

/* Read "<generation> <ok|error> <message>"; return 0 when the file exists. */
static int read_status(const char *path, uint64_t *gen, char *word, char *msg, size_t msglen)
{
	char line[1400];
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
	int rc = -1;

	*gen = 0;
	if (!f) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (fgets(line, sizeof(line), f)) {
		char *p = NULL;

		*gen = strtoull(line, &p, 10);
		if (p && sscanf(p, " %15s", word) == 1) {
			char *m = strstr(p, word) + strlen(word);

			m += strspn(m, " ");
			snprintf(msg, msglen, "%s", m);
			msg[strcspn(msg, "\n")] = '\0';
			rc = 0;
		}
	}
	fclose(f);
	return rc;
}

int ld_cmd_reload(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "queue", required_argument, NULL, 'q' },
		{ "pidfile", required_argument, NULL, 'p' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char pidfile[PATH_MAX] = "", status[PATH_MAX + 8], word[16] = "", msg[1300] = "";
	uint32_t queue = 0, timeout = 10;
	uint64_t before, gen;
	pid_t pid = 0, holder;
	int opt;

	optind = 0;   /* glibc: 0 fully resets getopt, which main() may have used */
	opterr = 0;   /* one message, ours */
	while ((opt = getopt_long(argc, argv, "q:p:t:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'q':
			if (ld_parse_u32(optarg, 0, 65535, &queue) < 0)
				return ld_usage_error("reload", "--queue: '%s' is not 0..65535", optarg);
			break;
		case 'p':
			snprintf(pidfile, sizeof(pidfile), "%s", optarg);
			break;
		case 't':
			if (ld_parse_u32(optarg, 1, 3600, &timeout) < 0)
				return ld_usage_error("reload", "--timeout: '%s' is not 1..3600", optarg);
			break;
		case 'h':
			fputs(usage, stdout);
			return LD_EXIT_OK;
		default:
			return ld_usage_error("reload", "unknown option or missing value: '%s'",
					      ld_bad_option(argv));
		}
	}
	if (optind != argc)
		return ld_usage_error("reload", "unexpected argument '%s'", argv[optind]);
	if (!pidfile[0])
		ld_default_pidfile(queue, pidfile, sizeof(pidfile));
	snprintf(status, sizeof(status), "%s.status", pidfile);

	if (ld_pidfile_read(pidfile, &pid, &queue) < 0) {
		fprintf(stderr, "luadivert reload: no running instance found through %s: %s\n",
			pidfile, errno == EINVAL ? "no pid in it" : errno == ELOOP
			? "it is a symbolic link" : strerror(errno));
		return LD_EXIT_FAIL;
	}
	/* A stale file's pid may belong to another program by now: signal
	 * only the process that holds the queue's lock in this namespace. */
	holder = ld_rules_lock_holder((uint16_t)queue);
	if (holder != pid) {
		fprintf(stderr, "luadivert reload: pid %ld in %s is not the luadivert on queue %u in "
			"this network namespace (%s); not signalling it\n", (long)pid, pidfile, queue,
			holder > 0 ? "another process holds the queue" : "no luadivert holds the queue");
		return LD_EXIT_FAIL;
	}
	read_status(status, &before, word, msg, sizeof(msg));
	if (kill((pid_t)pid, SIGHUP) < 0) {
		fprintf(stderr, "luadivert reload: signalling pid %ld: %s\n", (long)pid, strerror(errno));
		return LD_EXIT_FAIL;
	}
	for (uint32_t waited = 0; waited < timeout * 100; waited++) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };

		if (read_status(status, &gen, word, msg, sizeof(msg)) == 0 && gen > before) {
			if (strcmp(word, "ok") == 0) {
				printf("%s\n", msg);
				return LD_EXIT_OK;
			}
			fprintf(stderr, "luadivert reload: %s\n", msg);
			return LD_EXIT_FAIL;
		}
		nanosleep(&ts, NULL);
	}
	fprintf(stderr, "luadivert reload: pid %ld did not report within %u s\n", (long)pid, timeout);
	return LD_EXIT_FAIL;
}
