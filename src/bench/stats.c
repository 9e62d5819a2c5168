/* bench: statistics over repetitions, and the prompts. */
#include "bench/bench.h"

#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void drv_bench_stat_compute(const double *v, int n, struct drv_bench_stat *out)
{
    out->median = out->min = out->max = out->spread = -1;
    out->n = 0;
    double small[64];
    double *s = n <= 64 ? small : malloc(sizeof(double) * (size_t)n);
    if (s == NULL)
        return;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (v[i] >= 0)
            s[k++] = v[i];
    if (k > 0) {
        qsort(s, (size_t)k, sizeof(double), cmp_double);
        out->n = k;
        out->min = s[0];
        out->max = s[k - 1];
        out->median = k % 2 ? s[k / 2] : (s[k / 2 - 1] + s[k / 2]) / 2;
        out->spread = out->median > 0 ? (out->max - out->min) / out->median : 0;
    }
    if (s != small)
        free(s);
}

/* Common words of varied length and spelling: most are one token in a large
 * vocabulary, several in a small one; the server's count is what is reported. */
static const char *const words[] = {
    "river",    "stone",    "garden",  "window",  "quiet",    "bright",  "morning",  "letter",
    "travel",   "market",   "yellow",  "forest",  "little",   "castle",  "simple",   "number",
    "orange",   "winter",   "summer",  "silver",  "gentle",   "harbor",  "basket",   "pencil",
    "friend",   "mountain", "valley",  "thunder", "candle",   "mirror",  "ocean",    "planet",
    "rabbit",   "kitchen",  "button",  "ladder",  "meadow",   "pocket",  "shadow",   "thread",
    "wonder",   "engine",   "bridge",  "cotton",  "dinner",   "feather", "glass",    "honey",
    "island",   "jacket",   "kettle",  "lemon",   "marble",   "needle",  "office",   "pepper",
    "question", "rocket",   "saddle",  "tunnel",  "umbrella", "velvet",  "wagon",    "yard",
    "zebra",    "apple",    "branch",  "cloud",   "desert",   "eagle",   "field",    "grape",
    "hammer",   "iron",     "jungle",  "knife",   "lamp",     "music",   "night",    "olive",
    "paper",    "quilt",    "road",    "sugar",   "table",    "uncle",   "violin",   "water",
    "young",    "anchor",   "blanket", "carpet",  "dragon",   "elbow",   "fountain", "guitar",
    "horizon",  "insect",   "jewel",   "kingdom", "lantern",  "magnet",  "nectar",   "oyster",
    "puzzle",   "quarter",  "ribbon",  "spider",  "tiger",    "unicorn", "village",  "whistle",
    "copper",   "bottle",   "chimney", "daisy",   "ember",    "fabric",  "glacier",  "hollow",
    "ivory",    "juniper",  "kitten",  "lizard",  "maple",    "noodle",  "orchard",  "parrot",
    "quick",    "rustle",   "salmon",  "teapot",  "upward",   "vapor",   "walnut",   "yearly",
    "zenith",   "bakery",   "canyon",  "dolphin", "echo",     "falcon",  "gravel",   "helmet",
    "igloo",    "jigsaw",   "koala",   "lobster", "mango",    "nutmeg",  "opal",     "pebble",
    "quartz",   "raven",    "scarf",   "tulip",   "utensil",  "vintage", "wizard",   "oxygen",
    "yogurt",   "zipper",   "acorn",   "beacon",  "cactus",   "dune",    "easel",    "fiddle",
    "goblet",   "hazel",    "inkwell", "jasmine", "keel",     "locket",  "mitten",   "nomad",
    "oatmeal",  "pillow",   "quiver",  "riddle",  "sprout",   "thimble", "urchin",   "vessel",
    "willow",   "yarn",     "zest",    "amber",   "biscuit",  "cedar",   "denim",    "emerald",
    "fern",     "ginger",   "harvest", "icicle",  "journal",  "kayak",   "lilac",    "muffin",
    "nickel",   "obelisk",  "pumpkin", "quail",   "radish",   "sparrow", "timber",   "ukulele",
    "vanilla",  "walrus",   "abacus",  "bramble", "cobalt",   "dagger",  "elixir",   "fjord",
    "granite",  "hermit",   "incense", "jester",  "kiln",     "lagoon",  "mosaic",   "nebula",
    "onyx",     "pagoda",   "quest",   "rampart", "saffron",  "tundra",  "upland",   "verdant",
    "wharf",    "yonder",   "zephyr",  "atlas",   "bison",    "crater",  "drizzle",  "estuary",
    "frost",    "gondola",  "hickory", "inlet",   "jaguar",   "kestrel", "lichen",   "monsoon",
    "nimbus",   "oasis",    "prairie", "quarry",  "reef",     "summit",  "tide",     "vortex",
};
#define N_WORDS (sizeof(words) / sizeof(words[0]))

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

int drv_bench_prompt(struct drv_buf *out, int n_words, uint64_t seed)
{
    uint64_t s = seed;
    int rc = 0;
    if (n_words <= 0)
        return 0;
    /* the first two words are a tag of the seed: prompts of different
     * repetitions share no prefix a server could have cached */
    uint64_t tag = splitmix64(&s);
    rc = drv_buf_appendf(out, "%s", words[tag % N_WORDS]);
    if (rc == 0 && n_words > 1)
        rc = drv_buf_appendf(out, " %05u", (unsigned)((tag >> 32) % 100000));
    for (int i = 2; rc == 0 && i < n_words; i++) {
        uint64_t r = splitmix64(&s);
        /* a sentence break now and then, so the text is not one run-on line */
        rc = drv_buf_appendf(out, "%s%s", (r >> 40) % 11 == 0 ? ". " : " ", words[r % N_WORDS]);
    }
    return rc;
}
