// SPDX-License-Identifier: MIT
/*
 * rules_swap_unit.c - unit tests of the rule swap a reload does and of the
 * declared rules (core/rules_swap.c, core/policy_rules.c): the scripts
 * built, the comment carrying the filter, the merge with the command
 * line. Needs no root and touches no firewall (the restore is never run).
 * Built with ASan+UBSan (Makefile: build/unit/), run by tests/run.sh.
 */
#include "../../core/log.c"
#include "../../core/rules.c"
#include "../../core/rules_compile.c"
#include "../../core/rules_save.c"
#include "../../core/rules_exec.c"
#include "../../core/rules_lock.c"
#include "../../core/rules_swap.c"
#include "../../core/policy_rules.c"

static int failed, total;

static void check(int cond, const char *what)
{
	total++;
	if (!cond)
		failed++;
	printf("%s - %s\n", cond ? "ok" : "not ok", what);
}

static struct ld_rules_set *make(const char *filter, unsigned hooks, int family)
{
	static struct ld_rules_set sets[4];
	static int next;
	struct ld_rules_set *s = &sets[next++ % 4];
	struct ld_rules_cfg cfg;
	char err[512];

	ld_rules_cfg_init(&cfg, 0);
	cfg.filter = filter;
	cfg.hooks = hooks;
	cfg.family = family;
	if (ld_rules_set_make(s, &cfg, err, sizeof err) < 0) {
		printf("# %s\n", err);
		return NULL;
	}
	return s;
}

/* The script that takes family @fi from what @from installs to what @to does. */
static long script(const struct ld_rules_set *from, const struct ld_rules_set *to, int fi,
		   char *buf, size_t len)
{
	char a[RENDER_MAX], b[RENDER_MAX];
	struct fam_state now;

	if (render(from, fi, a, sizeof a) < 0 || render(to, fi, b, sizeof b) < 0)
		return -1;
	state_of_render(a, "LUADIVERT-Q0", &now);
	return swap_script("LUADIVERT-Q0", &now, b, buf, len);
}

static void test_sets(void)
{
	struct ld_rules_set *a = make("udp dst port 9000", LD_HOOK_OUTPUT, 4);
	struct ld_rules_set *b = make("udp dst port 9000", LD_HOOK_OUTPUT, 4);
	struct ld_rules_set *c = make("udp dst port 9000", LD_HOOK_INPUT, 4);
	char buf[256], err[256];
	struct ld_rules_cfg cfg;
	static struct ld_rules_set big;
	static char longf[LD_RULES_FILTER_MAX + 10];

	check(a && b && c, "sets compile");
	check(ld_rules_set_same(a, b) && !ld_rules_set_same(a, c), "same rules, other hook");
	check(strcmp(ld_rules_set_describe(a, buf, sizeof buf),
		     "\"udp dst port 9000\" at output, IPv4") == 0, "describe");
	memset(longf, 'x', sizeof longf - 1);
	ld_rules_cfg_init(&cfg, 0);
	cfg.filter = longf;
	check(ld_rules_set_make(&big, &cfg, err, sizeof err) < 0 && strstr(err, "longer than"),
	      "a filter longer than the set keeps is refused");
}

static void test_scripts(void)
{
	struct ld_rules_set *out4 = make("udp dst port 9000", LD_HOOK_OUTPUT, 4);
	struct ld_rules_set *in4 = make("udp dst port 9001", LD_HOOK_INPUT, 4);
	struct ld_rules_set *in46 = make("udp dst port 9001", LD_HOOK_INPUT, 0);
	char buf[SCRIPT_MAX];
	long n;

	n = script(out4, in4, 0, buf, sizeof buf);
	check(n > 0 && strncmp(buf, "*mangle\n:LUADIVERT-Q0 - [0:0]\n-F LUADIVERT-Q0\n", 45) == 0,
	      "hook swap: the chain is declared and flushed first");
	check(strstr(buf, "--comment \"filter: udp dst port 9001\" -j NFQUEUE --queue-num 0") &&
	      !strstr(buf, "9000"), "hook swap: the new filter's rule, not the old one");
	check(strstr(buf, "\n-D OUTPUT -j LUADIVERT-Q0\n") && strstr(buf, "\n-A INPUT -j LUADIVERT-Q0\n") &&
	      !strstr(buf, "-A OUTPUT"), "hook swap: output's jump goes, input's comes");
	check(n > 7 && strcmp(buf + n - 7, "COMMIT\n") == 0, "one COMMIT at the end");

	n = script(in4, in46, 1, buf, sizeof buf);
	check(n > 0 && strstr(buf, ":LUADIVERT-Q0 - [0:0]") && strstr(buf, "-A INPUT -j LUADIVERT-Q0\n") &&
	      !strstr(buf, "-D "), "family 4 -> both: IPv6 gets chain and jump, nothing deleted");
	n = script(in46, in4, 1, buf, sizeof buf);
	check(n > 0 && strstr(buf, "-D INPUT -j LUADIVERT-Q0\n-F LUADIVERT-Q0\n-X LUADIVERT-Q0\nCOMMIT\n"),
	      "family both -> 4: IPv6 loses jump, then chain");
	check(script(out4, in4, 1, buf, sizeof buf) == 0, "a family without rules before or after: no run");
	n = script(in4, in4, 0, buf, sizeof buf);
	check(n > 0 && !strstr(buf, "-D ") && !strstr(buf, "-A INPUT"),
	      "same hooks: the jump stays where it is");
	check(script(out4, in4, 0, buf, 40) < 0, "a script that does not fit fails");
}

static void test_comment(void)
{
	char c[LD_RULES_COMMENT_MAX];
	static char longf[1000];

	ld_rules_filter_comment(NULL, NULL, c, sizeof c);
	check(strcmp(c, "filter: (none)") == 0, "comment: no filter");
	ld_rules_filter_comment(NULL, "  tcp and \"x\\y\"\n", c, sizeof c);
	check(strcmp(c, "filter: tcp and 'x'y'") == 0, "comment: no quote, backslash or newline");
	memset(longf, 'a', sizeof longf - 1);
	ld_rules_filter_comment(NULL, longf, c, sizeof c);
	check(strlen(c) == LD_RULES_COMMENT_MAX - 1 && strcmp(c + strlen(c) - 3, "...") == 0,
	      "comment: a long filter is cut to xt_comment's size, ending in ...");
}

static void test_declared(void)
{
	struct ld_policy_rules d;
	struct ld_divert div = { .cur = NULL };
	struct ld_rules_set *s;
	char err[1200];

	check(ld_policy_rules_set(&d, NULL, NULL, NULL, NULL, -1, err, sizeof err) == 0 &&
	      d.declared == 0, "nothing declared");
	check(ld_policy_rules_set(&d, "udp", "p.lua:2", "input, output", "p.lua:3", 6, err,
				  sizeof err) == 0 &&
	      d.declared == (LD_DECL_FILTER | LD_DECL_HOOK | LD_DECL_FAMILY) &&
	      d.hooks == (LD_HOOK_INPUT | LD_HOOK_OUTPUT) && d.family == 6, "all three declared");
	check(ld_policy_rules_set(&d, NULL, NULL, "output,outptu", "p.lua:4", -1, err,
				  sizeof err) < 0 && strstr(err, "p.lua:4: hook \"output,outptu\""),
	      "unknown hook name: file:line and the names");

	/* the command line gives --filter and --family; the policy declares filter and hook */
	ld_rules_cfg_init(&div.cmdline, 0);
	div.cmdline.filter = "tcp";
	div.cmdline.family = 4;
	div.given = LD_DECL_FILTER | LD_DECL_FAMILY;
	ld_policy_rules_set(&d, "udp dst port 53", "p.lua:2", "forward", "p.lua:3", -1, err,
			    sizeof err);
	check(ld_divert_plan(&div, &d, &s, err, sizeof err) == 0 && s &&
	      strcmp(s->cfg.filter, "udp dst port 53") == 0 && s->cfg.hooks == LD_HOOK_FORWARD &&
	      s->cfg.family == 4, "plan: declared fields win, --family fills the rest");
	free(s);
	ld_policy_rules_set(&d, "udp dst prot 53", "p.lua:2", NULL, NULL, -1, err, sizeof err);
	check(ld_divert_plan(&div, &d, &s, err, sizeof err) < 0 && !s &&
	      strncmp(err, "p.lua:2: filter: invalid filter \"udp dst prot 53\"", 49) == 0,
	      "plan: a bad declared filter names file:line");
	check(ld_divert_plan(&div, NULL, &s, err, sizeof err) == 0 && strcmp(s->cfg.filter, "tcp") == 0,
	      "plan: nothing declared = the command line");
	free(s);
}

int main(void)
{
	test_sets();
	test_scripts();
	test_comment();
	test_declared();
	printf("rules_swap: %d of %d checks failed\n", failed, total);
	return failed ? 1 : 0;
}
