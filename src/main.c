/* drover — the subcommand table and dispatch. Everything else is in libdrover. */
#include "cmd/cmd.h"

#include <string.h>

const struct drv_cmd drv_commands[] = {
    {"help", drv_cmd_help, "show the commands, or one command's options",
     "usage: drover help [COMMAND]\n\n"
     "Lists drover's commands, or prints the options of COMMAND."},
    {"version", drv_cmd_version, "print drover's version and the llama.cpp it runs on",
     "usage: drover version\n\n"
     "Prints drover's version and the llama.cpp release and ggml build it links.\n"
     "Same as 'drover --version'."},
    {"inspect", drv_cmd_inspect, "show what a GGUF file holds, without loading it",
     "usage: drover inspect [--json] FILE.gguf\n\n"
     "Reads a GGUF file's metadata and tensor table (no weights are loaded) and\n"
     "shows: architecture, name, parameter count, file type / quantization, tensor\n"
     "bytes by type, blocks, embedding length, heads, KV heads, head dimension, FFN\n"
     "length, training context, rope settings, vocabulary and tokenizer, chat\n"
     "template, and expert counts of mixture-of-experts models.\n\n"
     "options:\n"
     "  --json     print one JSON object instead of the table\n"
     "  -h, --help show this help\n\n"
     "exit status: 0 ok; 1 the file is missing, not GGUF, corrupt or truncated;\n"
     "2 bad usage."},
    {"serve", drv_cmd_serve, "serve GGUF models over the Ollama and OpenAI APIs",
     "usage: drover serve [--model PATH]... [--models DIR]... [--host H] [--port P] [options]\n\n"
     "Runs GGUF models in-process through llama.cpp and answers the Ollama API\n"
     "(/api/generate, /api/chat, /api/tags, /api/ps, /api/show, ...) and the OpenAI\n"
     "API (/v1/chat/completions, /v1/completions, /v1/models) on one port, plus\n"
     "/health and /metrics (Prometheus). A model's name is its file stem\n"
     "(stories260K, or stories260K:latest). Models in $XDG_DATA_HOME/drover/models\n"
     "and in an Ollama store ($OLLAMA_MODELS or ~/.ollama/models) are served too,\n"
     "under their Ollama names. Models load on first use.\n\n"
     "options:\n"
     "  -m, --model PATH     serve this GGUF file (repeatable)\n"
     "  --models DIR         serve every *.gguf in DIR (repeatable)\n"
     "  --host H             address to listen on (default 127.0.0.1)\n"
     "  --port P             port (default 11435; 0 = any free port)\n"
     "  --parallel N         slots per model: requests decoded together (default: as many\n"
     "                       KV caches as fit free memory, at most 4)\n"
     "  --ctx N              context tokens per slot (default: the model's, at most 4096)\n"
     "  --threads N          CPU threads (default: physical cores)\n"
     "  --kv-type T          KV cache type f16|q8_0|q4_0 (quantized ones use flash attention)\n"
     "  --gpu-layers N       layers on GPUs (default -1: as many as fit free GPU memory)\n"
     "  --max-loaded N       models loaded at once, least recently used unloaded (default 2)\n"
     "  --max-queue N        requests waiting per model before 503 (default 64)\n"
     "  --keep-alive D       how long an idle model stays loaded (default 5m; -1 = forever)\n"
     "  --no-ollama-store    do not serve the models of a local Ollama store\n"
     "  --config FILE        settings file (default $XDG_CONFIG_HOME/drover/drover.conf)\n"
     "  --log-level L        debug|info|warn|error (default info)\n"
     "  -h, --help           show this help\n\n"
     "The config file's [serve] section takes the same settings as the options\n"
     "(port = 11435, model = /path/x.gguf, max_loaded = 2, ollama_store = no, ...);\n"
     "the command line wins. [alias NAME] with model = MODEL gives a model another\n"
     "name. Stops on SIGINT or SIGTERM."},
    {"synth", drv_cmd_synth, "write a random-weight GGUF with a model's exact shapes",
     "usage: drover synth NAME|SHAPE -o FILE [--quant Q] [--seed N] [--ctx N] [--threads N]\n"
     "       drover synth --list\n\n"
     "Writes a GGUF file with the shapes of a known model (NAME, see --list) or of\n"
     "explicit dimensions (SHAPE), random weights quantized by ggml's own quantizers\n"
     "with llama.cpp's tensor-type mix for Q, and a synthetic SentencePiece tokenizer\n"
     "of the model's vocabulary size. llama.cpp loads and generates from it at the\n"
     "speed the real model would have (speed depends on shapes and types, not on\n"
     "what the weights learned): measure a model before downloading it. The text it\n"
     "generates is gibberish. Same seed, same bytes.\n\n"
     "SHAPE: ARCH:layers=N,embd=N,heads=N,kv_heads=N,ff=N,vocab=N[,head_dim=N]\n"
     "       [,ctx=N][,tied=0|1][,rope_theta=X][,eps=X]\n"
     "  ARCH is llama, qwen2 (q/k/v biases) or qwen3 (q/k norms); head_dim defaults\n"
     "  to embd/heads, ctx to 4096, tied to 0. Example:\n"
     "  llama:layers=16,embd=2048,heads=32,kv_heads=8,ff=8192,vocab=128256,tied=1\n\n"
     "Dense llama, qwen2 and qwen3 models only: mixture-of-experts (qwen3moe),\n"
     "sliding-window (gemma3) and other architectures (phi3, gemma4) are not\n"
     "synthesized yet.\n\n"
     "options:\n"
     "  -o, --output FILE  where to write the GGUF (required)\n"
     "  -q, --quant Q      q4_0, q4_k_m, q5_k_m, q8_0 or f16 (default q4_k_m)\n"
     "  --seed N           random seed (default 1)\n"
     "  --ctx N            context length written to the file (default: the model's)\n"
     "  --threads N        quantization threads (default: online CPUs)\n"
     "  --list             list the known model NAMEs with their shapes and sizes\n"
     "  -h, --help         show this help\n\n"
     "exit status: 0 ok; 1 unknown NAME, or the file could not be written; 2 bad\n"
     "usage or a bad SHAPE."},
    {"history", drv_cmd_history, "list past bench runs, newest first",
     "usage: drover history [--target T] [--model M] [--since D] [--limit N] [--json] [--db "
     "FILE]\n\n"
     "Lists the bench runs drover has recorded, newest first: when, target, kind,\n"
     "model, quantization, the median prompt and generation tokens/s and time to\n"
     "first token over the run's repetitions, how many repetitions, and whether the\n"
     "run is the baseline of its target and model. History lives in\n"
     "$XDG_STATE_HOME/drover/drover.db (default ~/.local/state/drover/drover.db).\n\n"
     "options:\n"
     "  --target T   only runs against target T (a URL or node name)\n"
     "  --model M    only runs of model M\n"
     "  --since D    only runs since a date (2026-11-01, local midnight) or within an\n"
     "               age (30m, 24h, 7d, 2w)\n"
     "  --limit N    at most N runs (default 20)\n"
     "  --json       print one JSON object, every repetition included\n"
     "  --db FILE    read this database instead of the default\n"
     "  -h, --help   show this help\n\n"
     "exit status: 0 ok (no history yet is ok); 1 the database is not drover's,\n"
     "corrupt, from a newer drover, or locked; 2 bad usage."},
    {"bench", drv_cmd_bench, "measure serving speed of drover, Ollama or llama-server nodes",
     "usage: drover bench TARGET... [--model M] [-p N] [-n N] [-r N] [--concurrency LIST]\n"
     "                    [--kind K] [--json|--csv] [--db FILE] [--baseline]\n\n"
     "Measures each TARGET (a URL, http://host:port) over HTTP the way a user sees it:\n"
     "prompt processing (pp) and generation (tg) in tokens/s, time to first token\n"
     "(ttft) and end-to-end latency (e2e). After one warm-up request it makes REPS\n"
     "requests of about N prompt tokens (a different prompt each time, so prompt\n"
     "caches do not help) generating N tokens, and shows the median over them with\n"
     "the spread ((max - min) / median) of tg. tok/s come from the server's own\n"
     "timings where it gives them (drover, Ollama, llama-server), else from the\n"
     "client's clock; when both exist and differ by more than 10 %, both are shown.\n"
     "The kind of server (drover, ollama, llama-server, openai) is detected from\n"
     "what it answers. With several targets a ratio column compares each to the\n"
     "first.\n\n"
     "options:\n"
     "  -m, --model M        model to measure (default: the target's loaded or only model)\n"
     "  -p, --prompt-tokens N  prompt length in tokens (default 512)\n"
     "  -n, --gen-tokens N   tokens to generate per request (default 128)\n"
     "  -r, --reps N         repetitions after the warm-up (default 5)\n"
     "  -c, --concurrency L  streams at once, a list: 1,4,8 gives one row per level with\n"
     "                       tg of all streams together (default 1)\n"
     "  --kind K             do not detect: drover|ollama|llama-server|openai\n"
     "  --json               one JSON document with every number and repetition\n"
     "  --csv                one CSV line per target and level\n"
     "  --db FILE            history database (default $XDG_STATE_HOME/drover/drover.db)\n"
     "  --baseline           mark this run as the baseline of its target and model\n"
     "  -h, --help           show this help\n\n"
     "A target that cannot be reached or lacks the model is reported and the others\n"
     "are still measured; one that fails midway keeps the repetitions it finished.\n"
     "Ctrl-C stops and prints what was measured so far.\n\n"
     "exit status: 0 at least one target measured; 1 none; 2 bad usage."},
    {"hw", drv_cmd_hw, "show the machine as inference sees it: CPU, memory, GPUs, problems",
     "usage: drover hw [--json] [--quick]\n"
     "       drover hw --check|--hw FILE.json [--json]\n\n"
     "Shows the CPU (model, sockets, physical cores, logical CPUs, caches and the SIMD\n"
     "features llama.cpp uses), RAM and swap, the memory read bandwidth measured\n"
     "here (all physical cores streaming a large buffer for about a second; the\n"
     "number generation speed is bound by), every device llama.cpp sees (ggml\n"
     "backend devices, with type and memory), AMD GPUs from sysfs (gfx target, VRAM,\n"
     "GTT, APU or discrete, whether ROCm's rocBLAS has kernels for the target),\n"
     "NVIDIA GPUs from nvidia-smi, and the problems all that shows, in plain words.\n\n"
     "options:\n"
     "  --json        print the hardware profile (one JSON object; the format\n"
     "                commands read with --hw FILE.json, documented in src/probe/probe.h)\n"
     "  --quick       skip the bandwidth measurement (bandwidth_gbps is null)\n"
     "  --check FILE  read the hardware profile FILE instead of this machine, say\n"
     "                which field is missing or invalid, and print it\n"
     "  --hw FILE     the same as --check FILE (the option every command that\n"
     "                reasons about hardware takes)\n"
     "  -h, --help    show this help\n\n"
     "exit status: 0 ok; 1 the measurement failed or FILE is not a valid profile;\n"
     "2 bad usage."},
    {"fit", drv_cmd_fit, "show whether a model fits this machine, where, and how fast",
     "usage: drover fit MODEL [--ctx N] [--kv f16|q8_0|q4_0] [--parallel N]\n"
     "                  [--gpu-layers N] [--hw FILE.json] [--json]\n\n"
     "Estimates, without loading anything, the memory llama.cpp needs for MODEL on\n"
     "each device: weights (per block, output, token embeddings, which stay in host\n"
     "memory), KV cache for the context, parallel sequences and cache type, compute\n"
     "buffers and a fixed overhead (150 MiB RAM, 250 MiB per GPU); how many layers\n"
     "go on each GPU (the last layers first, filling the first GPU's free memory),\n"
     "whether it fits, and if not, in which form it would (smaller context, q8_0 KV,\n"
     "fewer GPU layers). Expected generation speed comes from the roofline: read\n"
     "bandwidth / bytes read per token, at 30-75 % of a CPU's measured bandwidth and\n"
     "40-80 % of a GPU's (an integrated GPU reads the host's RAM; a discrete GPU's\n"
     "bandwidth comes from the profile's devices[].bandwidth_gbps, else it is unknown).\n\n"
     "MODEL is a GGUF file or a known model NAME (see 'drover synth --list') with an\n"
     "optional quantization: qwen3:8b (q4_k_m), qwen3:8b-q8_0, llama3.2:1b-q4_0.\n\n"
     "options:\n"
     "  --ctx N          context tokens per sequence (default 4096)\n"
     "  --kv T           KV cache type f16|q8_0|q4_0 (default f16)\n"
     "  --parallel N     sequences, each with its own context (default 1)\n"
     "  --gpu-layers N   layers on GPUs, n_layer + 1 = all (default: as many as fit)\n"
     "  --hw FILE.json   a hardware profile ('drover hw --json') instead of this\n"
     "                   machine (which is probed, bandwidth measured for 0.3 s)\n"
     "  --json           print one JSON object instead of the table\n"
     "  -h, --help       show this help\n\n"
     "exit status: 0 ok (whether it fits or not); 1 unknown model, bad GGUF or bad\n"
     "profile; 2 bad usage."},
    {"recommend", drv_cmd_recommend, "which models to run on this machine, and which to avoid",
     "usage: drover recommend [--hw FILE.json] [--ctx N] [--kv T] [--measure]\n"
     "                        [--measure-max SIZE] [--json]\n\n"
     "Plans every known model (see 'drover synth --list') at every quantization\n"
     "(q4_0, q4_k_m, q5_k_m, q8_0, f16) on this machine, or on the machine a\n"
     "hardware profile describes, the way 'drover fit' does, and picks one per role:\n\n"
     "  fastest useful  the most tok/s among models of >= 1B parameters\n"
     "  best quality    the most parameters, then the best quantization, that still\n"
     "                  generate >= 5 tok/s\n"
     "  daily driver    the most parameters at q4_k_m that generate >= 15 tok/s (when\n"
     "                  none does: the fastest q4_k_m one)\n\n"
     "A pick must fit fully in the fast memory (all layers on the GPU; RAM when there\n"
     "is no GPU) with N tokens of context. Each pick shows its size, the largest\n"
     "context that still fits, and tok/s: the roofline range, judged by its middle.\n"
     "Then a short list of models to avoid, with the numbers that say why: too slow,\n"
     "spilling onto the CPU, or not fitting at all.\n\n"
     "options:\n"
     "  --hw FILE.json     a hardware profile ('drover hw --json') instead of this\n"
     "                     machine (probed, bandwidth measured for 0.5 s). A discrete\n"
     "                     GPU's speed needs \"bandwidth_gbps\" on its device entry\n"
     "  --ctx N            context tokens a pick must allow (default 4096)\n"
     "  --kv T             KV cache type f16|q8_0|q4_0 (default f16)\n"
     "  --measure          synthesize the picks (random weights, real shapes; cached\n"
     "                     in $XDG_CACHE_HOME/drover/recommend) and measure them here\n"
     "                     with 'bench --local' (pp64, tg32, 2 reps); measured tok/s\n"
     "                     replace predictions, are marked MEASURED, and can change a\n"
     "                     pick (the new pick is measured too, at most 4 models).\n"
     "                     Takes minutes: writing a 1B model costs about one on 2\n"
     "                     cores (once), and a busy machine measures low\n"
     "  --measure-max SIZE measure only models up to SIZE parameters (default 2b)\n"
     "  --json             print one JSON object (picks, avoid, notes and every\n"
     "                     candidate) instead of the text\n"
     "  -h, --help         show this help\n\n"
     "exit status: 0 ok (also when nothing fits); 1 bad profile or the probe failed;\n"
     "2 bad usage."},
    {NULL, NULL, NULL, NULL},
};

int main(int argc, char **argv)
{
    if (argc < 2) {
        drv_cmd_overview(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0)
        name = "version";
    else if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
        name = "help";
    const struct drv_cmd *cmd = drv_cmd_find(name);
    if (cmd == NULL) {
        fprintf(stderr, "drover: unknown %s '%s'\n\n", name[0] == '-' ? "option" : "command", name);
        drv_cmd_overview(stderr);
        return 2;
    }
    argv[1] = (char *)cmd->name;
    return cmd->fn(argc - 1, argv + 1);
}
