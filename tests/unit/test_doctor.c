/* doctor: every check on recorded answers shaped like the real APIs' (drover's
 * own routes as a drover node answers them, Ollama's as its docs and servers
 * show them, llama-server's as captured from the llama-server of this
 * llama.cpp release), each with a node that has the problem and one that does
 * not; then the whole collection against canned Ollama and llama-server nodes
 * on loopback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "doctor/doctor.h"
#include "http/http.h"

/* ---- recorded answers ------------------------------------------------------------ */

/* GET /api/drover/status of `drover serve --threads 6` */
static const char STATUS_THREADS6[] =
    "{\"version\":\"0.1.0\",\"llama_cpp\":\"v0.4.0 (node-llama-cpp 3.21.1)\",\"ggml\":\"0.23.0 "
    "(commit 80fb11a)\",\"threads\":6,\"threads_from\":\"setting\",\"physical_cores\":2,"
    "\"parallel\":0,\"ctx\":0,\"kv_type\":\"f16\",\"flash_attn\":false,\"gpu_layers\":-1,"
    "\"max_loaded\":2,\"max_queue\":64,\"keep_alive_ms\":300000}";
/* ... of `drover serve` with defaults */
static const char STATUS_DEFAULT[] =
    "{\"version\":\"0.1.0\",\"llama_cpp\":\"v0.4.0 (node-llama-cpp 3.21.1)\",\"ggml\":\"0.23.0 "
    "(commit 80fb11a)\",\"threads\":2,\"threads_from\":\"physical cores\",\"physical_cores\":2,"
    "\"parallel\":0,\"ctx\":0,\"kv_type\":\"f16\",\"flash_attn\":false,\"gpu_layers\":-1,"
    "\"max_loaded\":2,\"max_queue\":64,\"keep_alive_ms\":300000}";
/* ... of `drover serve --gpu-layers 0 --parallel 4 --keep-alive 0` on the laptop */
static const char STATUS_GPU0[] =
    "{\"version\":\"0.1.0\",\"llama_cpp\":\"v0.4.0 (node-llama-cpp 3.21.1)\",\"ggml\":\"0.23.0 "
    "(commit 80fb11a)\",\"threads\":8,\"threads_from\":\"physical cores\",\"physical_cores\":8,"
    "\"parallel\":4,\"ctx\":0,\"kv_type\":\"f16\",\"flash_attn\":false,\"gpu_layers\":0,"
    "\"max_loaded\":2,\"max_queue\":64,\"keep_alive_ms\":0}";

/* GET /api/drover/hw of this 2-core machine (bandwidth: drover serve does not measure it) */
static const char HW_XEON[] =
    "{\"version\":1,\"cpu\":{\"model\":\"Intel(R) Xeon(R) Processor\",\"sockets\":1,\"cores\":2,"
    "\"threads\":2,\"features\":[\"avx\",\"avx2\",\"avx512f\",\"f16c\",\"fma\"],\"l2_bytes\":"
    "4194304,\"l3_bytes\":503316480},\"memory\":{\"total_bytes\":25276063744,\"available_bytes\":"
    "24750923776,\"swap_total_bytes\":0,\"swap_free_bytes\":0,\"bandwidth_gbps\":null},"
    "\"devices\":[{\"name\":\"CPU\",\"description\":\"Intel(R) Xeon(R) Processor\",\"type\":"
    "\"cpu\",\"memory_total_bytes\":25276063744,\"memory_free_bytes\":25276063744}],\"amd\":[],"
    "\"nvidia\":[],\"problems\":[]}";
/* the field report's GPU laptop: RTX 3070 Laptop 8 GiB, Ryzen 7 5800H, 58 GiB */
static const char HW_LAPTOP[] =
    "{\"version\":1,\"cpu\":{\"model\":\"AMD Ryzen 7 5800H with Radeon Graphics\",\"sockets\":1,"
    "\"cores\":8,\"threads\":16,\"features\":[\"avx\",\"avx2\",\"f16c\",\"fma\"],\"l2_bytes\":"
    "4194304,\"l3_bytes\":16777216},\"memory\":{\"total_bytes\":62277025792,\"available_bytes\":"
    "58000000000,\"swap_total_bytes\":2147483648,\"swap_free_bytes\":2147483648,"
    "\"bandwidth_gbps\":38.5},\"devices\":[{\"name\":\"CUDA0\",\"description\":\"NVIDIA GeForce "
    "RTX 3070 Laptop GPU\",\"type\":\"gpu\",\"memory_total_bytes\":8589934592,"
    "\"memory_free_bytes\":8178892800},{\"name\":\"CPU\",\"description\":\"AMD Ryzen 7 5800H\","
    "\"type\":\"cpu\",\"memory_total_bytes\":62277025792,\"memory_free_bytes\":58000000000}],"
    "\"amd\":[],\"nvidia\":[{\"name\":\"NVIDIA GeForce RTX 3070 Laptop GPU\","
    "\"memory_total_bytes\":8589934592,\"memory_free_bytes\":8178892800,\"driver\":\"550.54.14\","
    "\"compute_cap\":\"8.6\"}],\"problems\":[]}";
/* the same laptop with a CPU-only llama.cpp: nvidia-smi sees the GPU, ggml does not */
static const char HW_LAPTOP_CPU_BUILD[] =
    "{\"version\":1,\"cpu\":{\"model\":\"AMD Ryzen 7 5800H\",\"sockets\":1,\"cores\":8,"
    "\"threads\":16,\"features\":[],\"l2_bytes\":0,\"l3_bytes\":0},\"memory\":{\"total_bytes\":"
    "62277025792,\"available_bytes\":58000000000,\"swap_total_bytes\":0,\"swap_free_bytes\":0,"
    "\"bandwidth_gbps\":null},\"devices\":[{\"name\":\"CPU\",\"description\":\"AMD Ryzen 7 "
    "5800H\",\"type\":\"cpu\",\"memory_total_bytes\":62277025792,\"memory_free_bytes\":"
    "58000000000}],\"amd\":[],\"nvidia\":[{\"name\":\"NVIDIA GeForce RTX 3070 Laptop GPU\","
    "\"memory_total_bytes\":8589934592,\"memory_free_bytes\":8178892800,\"driver\":\"550.54.14\","
    "\"compute_cap\":\"8.6\"}],\"problems\":[\"an NVIDIA GPU is present but llama.cpp sees no "
    "GPU device: this llama.cpp build has no GPU backend (Vulkan, ROCm, CUDA), so models run on "
    "the CPU\"]}";
/* the field report's APU laptop: 780M gfx1103, ROCm 7.2.1 without its kernels, and
 * HSA_OVERRIDE_GFX_VERSION=11.0.2 in the environment */
static const char HW_APU[] =
    "{\"version\":1,\"cpu\":{\"model\":\"AMD Ryzen 7 7840U w/ Radeon 780M Graphics\","
    "\"sockets\":1,\"cores\":8,\"threads\":16,\"features\":[\"avx2\"],\"l2_bytes\":8388608,"
    "\"l3_bytes\":16777216},\"memory\":{\"total_bytes\":57982058496,\"available_bytes\":"
    "42949672960,\"swap_total_bytes\":8589934592,\"swap_free_bytes\":8589934592,"
    "\"bandwidth_gbps\":61.25},\"devices\":[{\"name\":\"Vulkan0\",\"description\":\"AMD Radeon "
    "780M (RADV PHOENIX)\",\"type\":\"igpu\",\"memory_total_bytes\":37580963840,"
    "\"memory_free_bytes\":35433480192},{\"name\":\"CPU\",\"description\":\"AMD Ryzen 7 7840U\","
    "\"type\":\"cpu\",\"memory_total_bytes\":57982058496,\"memory_free_bytes\":42949672960}],"
    "\"amd\":[{\"card\":\"card0\",\"gfx_target\":\"gfx1103\",\"vram_total_bytes\":8589934592,"
    "\"gtt_total_bytes\":28991029248,\"apu\":true,\"rocm_version\":\"7.2.1\","
    "\"rocblas_kernels\":false}],\"nvidia\":[],\"problems\":[\"ROCm 7.2.1 has no rocBLAS kernels "
    "for gfx1103: use the Vulkan backend\",\"HSA_OVERRIDE_GFX_VERSION=11.0.2 makes ROCm run "
    "gfx1102 kernels on gfx1103: kernels of another ISA can crash or compute garbage; unset it "
    "and use the Vulkan backend\"]}";
/* the CPU-only Xeon workstation, out of RAM and swapping */
static const char HW_SWAPPING[] =
    "{\"version\":1,\"cpu\":{\"model\":\"Intel(R) Xeon(R) CPU E5-1650 v3 @ 3.50GHz\","
    "\"sockets\":1,\"cores\":6,\"threads\":12,\"features\":[\"avx2\"],\"l2_bytes\":1572864,"
    "\"l3_bytes\":15728640},\"memory\":{\"total_bytes\":83751862272,\"available_bytes\":"
    "2147483648,\"swap_total_bytes\":8589934592,\"swap_free_bytes\":4294967296,"
    "\"bandwidth_gbps\":52.1},\"devices\":[{\"name\":\"CPU\",\"description\":\"Intel(R) Xeon(R) "
    "CPU E5-1650 v3\",\"type\":\"cpu\",\"memory_total_bytes\":83751862272,"
    "\"memory_free_bytes\":2147483648}],\"amd\":[],\"nvidia\":[],\"problems\":[]}";

/* GET /api/ps of a drover node (stories260K on the CPU) */
static const char PS_DROVER_CPU[] =
    "{\"models\":[{\"name\":\"stories260K:latest\",\"model\":\"stories260K:latest\",\"size\":"
    "6414080,\"digest\":\"\",\"details\":{\"parent_model\":\"\",\"format\":\"gguf\",\"family\":"
    "\"llama\",\"families\":[\"llama\"],\"parameter_size\":\"293K\",\"quantization_level\":"
    "\"F32\"},\"expires_at\":\"2026-11-25T22:33:42Z\",\"size_vram\":0,\"context_length\":2048}]}";
static const char TAGS_DROVER[] =
    "{\"models\":[{\"name\":\"stories260K:latest\",\"model\":\"stories260K:latest\","
    "\"modified_at\":\"2026-11-25T22:14:10Z\",\"size\":1185376,\"digest\":\"\",\"details\":{"
    "\"parent_model\":\"\",\"format\":\"gguf\",\"family\":\"llama\",\"families\":[\"llama\"],"
    "\"parameter_size\":\"293K\",\"quantization_level\":\"F32\"}}]}";
static const char SHOW_DROVER[] =
    "{\"modelfile\":\"\",\"parameters\":\"\",\"template\":\"\",\"details\":{\"parent_model\":\"\","
    "\"format\":\"gguf\",\"family\":\"llama\",\"families\":[\"llama\"],\"parameter_size\":\"293K\","
    "\"quantization_level\":\"F32\"},\"model_info\":{\"general.architecture\":\"llama\","
    "\"general.parameter_count\":292800,\"llama.context_length\":2048,"
    "\"llama.embedding_length\":64,\"llama.block_count\":5,\"llama.attention.head_count\":8,"
    "\"llama.attention.head_count_kv\":4},\"capabilities\":[\"completion\"],\"modified_at\":\"\"}";

/* Llama 3.1 8B Q4_K_M (4.92 GB) on a drover node of the laptop: 4 slots x 4096 tokens */
#define LLAMA8_PS(size, vram)                                                                      \
    "{\"models\":[{\"name\":\"llama3.1-8b:latest\",\"model\":\"llama3.1-8b:latest\","              \
    "\"size\":" size                                                                               \
    ",\"digest\":\"\",\"details\":{\"parent_model\":\"\",\"format\":\"gguf\",\"family\":"          \
    "\"llama\",\"families\":[\"llama\"],\"parameter_size\":\"8.0B\",\"quantization_level\":"       \
    "\"Q4_K_M\"},\"expires_at\":\"2026-11-25T22:33:42Z\",\"size_vram\":" vram                      \
    ",\"context_length\":4096}]}"
static const char TAGS_LLAMA8[] =
    "{\"models\":[{\"name\":\"llama3.1-8b:latest\",\"model\":\"llama3.1-8b:latest\","
    "\"modified_at\":\"2026-11-25T22:14:10Z\",\"size\":4920734272,\"digest\":\"\",\"details\":{"
    "\"format\":\"gguf\",\"family\":\"llama\",\"parameter_size\":\"8.0B\","
    "\"quantization_level\":\"Q4_K_M\"}}]}";
static const char SHOW_LLAMA8_DROVER[] =
    "{\"modelfile\":\"\",\"parameters\":\"\",\"template\":\"\",\"details\":{\"format\":\"gguf\","
    "\"family\":\"llama\",\"parameter_size\":\"8.0B\",\"quantization_level\":\"Q4_K_M\"},"
    "\"model_info\":{\"general.architecture\":\"llama\",\"general.parameter_count\":8030261248,"
    "\"llama.context_length\":131072,\"llama.embedding_length\":4096,\"llama.block_count\":32,"
    "\"llama.attention.head_count\":32,\"llama.attention.head_count_kv\":8},\"capabilities\":["
    "\"completion\"],\"modified_at\":\"\"}";

/* Ollama (docs and a 0.12 server): GET /api/version, /api/ps, POST /api/show */
static const char OLLAMA_PS_MISTRAL[] =
    "{\"models\":[{\"name\":\"mistral:latest\",\"model\":\"mistral:latest\",\"size\":5137025024,"
    "\"digest\":\"2ae6f6dd7a3dd734790bbbf58b8909a606e0e7e97e94b7604e0aa7ae4490e6d8\","
    "\"details\":{\"parent_model\":\"\",\"format\":\"gguf\",\"family\":\"llama\",\"families\":["
    "\"llama\"],\"parameter_size\":\"7.2B\",\"quantization_level\":\"Q4_0\"},\"expires_at\":"
    "\"2024-06-04T14:38:31.83753-07:00\",\"size_vram\":0,\"context_length\":4096}]}";
static const char OLLAMA_SHOW_MISTRAL_12T[] =
    "{\"license\":\"Apache License\",\"modelfile\":\"# Modelfile generated by \\\"ollama "
    "show\\\"\\nFROM mistral:latest\\nPARAMETER num_thread 12\\n\",\"parameters\":\"num_thread  "
    "                   12\\nstop                           \\\"[INST]\\\"\\nstop              "
    "             \\\"[/INST]\\\"\",\"template\":\"[INST] {{ .Prompt }} [/INST]\",\"details\":{"
    "\"parent_model\":\"\",\"format\":\"gguf\",\"family\":\"llama\",\"families\":[\"llama\"],"
    "\"parameter_size\":\"7.2B\",\"quantization_level\":\"Q4_0\"},\"model_info\":{"
    "\"general.architecture\":\"llama\",\"general.file_type\":2,\"general.parameter_count\":"
    "7248023552,\"general.quantization_version\":2,\"llama.attention.head_count\":32,"
    "\"llama.attention.head_count_kv\":8,\"llama.attention.layer_norm_rms_epsilon\":0.00001,"
    "\"llama.block_count\":32,\"llama.context_length\":32768,\"llama.embedding_length\":4096,"
    "\"llama.feed_forward_length\":14336,\"llama.rope.dimension_count\":128,"
    "\"llama.rope.freq_base\":1000000,\"llama.vocab_size\":32768,\"tokenizer.ggml.bos_token_id\":"
    "1,\"tokenizer.ggml.eos_token_id\":2,\"tokenizer.ggml.model\":\"llama\"},\"capabilities\":["
    "\"completion\",\"tools\"],\"modified_at\":\"2025-06-04T14:38:31.83753-07:00\"}";
static const char OLLAMA_SHOW_MISTRAL[] =
    "{\"modelfile\":\"FROM mistral:latest\\n\",\"parameters\":\"stop                           "
    "\\\"[INST]\\\"\",\"details\":{\"format\":\"gguf\",\"family\":\"llama\",\"parameter_size\":"
    "\"7.2B\",\"quantization_level\":\"Q4_0\"},\"model_info\":{\"general.architecture\":\"llama\","
    "\"general.parameter_count\":7248023552,\"llama.attention.head_count\":32,"
    "\"llama.attention.head_count_kv\":8,\"llama.block_count\":32,\"llama.context_length\":"
    "32768,\"llama.embedding_length\":4096,\"llama.vocab_size\":32768},\"capabilities\":["
    "\"completion\",\"tools\"]}";
/* POST /api/show of models whose layers differ, shaped as Ollama answers without
 * "verbose" (GGUF arrays come as null, general.name and the chat template are
 * left out); keys and values are those of the models' GGUF files (MODELS.md).
 * gemma3:4b: a 1024-token window on 5 of every 6 layers, which llama.cpp's
 * gemma3 pattern decides (the file lists no layers) */
static const char OLLAMA_SHOW_GEMMA3[] =
    "{\"parameters\":\"stop                           \\\"<end_of_turn>\\\"\",\"details\":{"
    "\"format\":\"gguf\",\"family\":\"gemma3\",\"parameter_size\":\"4.3B\",\"quantization_level\":"
    "\"Q4_K_M\"},\"model_info\":{\"gemma3.attention.head_count\":8,"
    "\"gemma3.attention.head_count_kv\":4,\"gemma3.attention.key_length\":256,"
    "\"gemma3.attention.layer_norm_rms_epsilon\":0.000001,\"gemma3.attention.sliding_window\":1024,"
    "\"gemma3.attention.value_length\":256,\"gemma3.block_count\":34,\"gemma3.context_length\":"
    "131072,\"gemma3.embedding_length\":2560,\"gemma3.feed_forward_length\":10240,"
    "\"gemma3.mm.tokens_per_image\":256,\"gemma3.rope.scaling.factor\":8,"
    "\"gemma3.rope.scaling.type\":\"linear\",\"general.architecture\":\"gemma3\","
    "\"general.file_type\":15,\"general.parameter_count\":4299915632,"
    "\"general.quantization_version\":2,\"tokenizer.ggml.add_bos_token\":true,"
    "\"tokenizer.ggml.bos_token_id\":2,\"tokenizer.ggml.eos_token_id\":1,\"tokenizer.ggml.merges\":"
    "null,\"tokenizer.ggml.model\":\"llama\",\"tokenizer.ggml.scores\":null,"
    "\"tokenizer.ggml.token_type\":null,\"tokenizer.ggml.tokens\":null},\"capabilities\":["
    "\"completion\",\"vision\"]}";
static const char OLLAMA_PS_GEMMA3[] =
    "{\"models\":[{\"name\":\"gemma3:4b\",\"model\":\"gemma3:4b\",\"size\":7516192768,\"digest\":"
    "\"a2af6cc3eb7fa8be8504abaf9b04e88f17a119ec3f04a3addf55f92841195f5a\",\"details\":{"
    "\"format\":\"gguf\",\"family\":\"gemma3\",\"parameter_size\":\"4.3B\",\"quantization_level\":"
    "\"Q4_K_M\"},\"expires_at\":\"2026-11-25T22:33:42Z\",\"size_vram\":5690831667,"
    "\"context_length\":131072}]}";
static const char OLLAMA_TAGS_GEMMA3[] =
    "{\"models\":[{\"name\":\"gemma3:4b\",\"model\":\"gemma3:4b\",\"size\":3338801804,\"details\":"
    "{\"format\":\"gguf\",\"family\":\"gemma3\",\"parameter_size\":\"4.3B\","
    "\"quantization_level\":\"Q4_K_M\"}}]}";
/* qwen3:30b (Qwen3-30B-A3B): 128 experts of 768, 8 per token; the dense
 * feed_forward_length is in the file but unused */
static const char OLLAMA_SHOW_QWEN3MOE[] =
    "{\"details\":{\"format\":\"gguf\",\"family\":\"qwen3moe\",\"parameter_size\":\"30.5B\","
    "\"quantization_level\":\"Q4_K_M\"},\"model_info\":{\"general.architecture\":\"qwen3moe\","
    "\"general.file_type\":15,\"general.parameter_count\":30532122624,"
    "\"qwen3moe.attention.head_count\":32,\"qwen3moe.attention.head_count_kv\":4,"
    "\"qwen3moe.attention.key_length\":128,\"qwen3moe.attention.layer_norm_rms_epsilon\":0.000001,"
    "\"qwen3moe.attention.value_length\":128,\"qwen3moe.block_count\":48,"
    "\"qwen3moe.context_length\":262144,\"qwen3moe.embedding_length\":2048,"
    "\"qwen3moe.expert_count\":128,\"qwen3moe.expert_feed_forward_length\":768,"
    "\"qwen3moe.expert_used_count\":8,\"qwen3moe.feed_forward_length\":6144,"
    "\"qwen3moe.rope.freq_base\":10000000,\"tokenizer.ggml.model\":\"gpt2\","
    "\"tokenizer.ggml.tokens\":null},\"capabilities\":[\"completion\",\"tools\",\"thinking\"]}";
/* gemma4:26b as Ollama answers with "verbose": true (arrays of 30 layers:
 * 8 kv heads of 256 on the sliding layers, 2 of 512 on every sixth, global) */
#define GEMMA4_INFO(kv, pattern)                                                                   \
    "{\"details\":{\"format\":\"gguf\",\"family\":\"gemma4\",\"parameter_size\":\"25.2B\","        \
    "\"quantization_level\":\"Q4_K_M\"},\"model_info\":{\"general.architecture\":\"gemma4\","      \
    "\"general.parameter_count\":25233142046,\"gemma4.attention.head_count\":16,"                  \
    "\"gemma4.attention.head_count_kv\":" kv ",\"gemma4.attention.key_length\":512,"               \
    "\"gemma4.attention.key_length_swa\":256,\"gemma4.attention.value_length\":512,"               \
    "\"gemma4.attention.value_length_swa\":256,\"gemma4.attention.sliding_window\":1024,"          \
    "\"gemma4.attention.sliding_window_pattern\":" pattern ",\"gemma4.block_count\":30,"           \
    "\"gemma4.context_length\":262144,\"gemma4.embedding_length\":2816,"                           \
    "\"gemma4.expert_count\":128,\"gemma4.expert_feed_forward_length\":704,"                       \
    "\"gemma4.expert_used_count\":8,\"gemma4.feed_forward_length\":2112,"                          \
    "\"gemma4.final_logit_softcapping\":30,\"tokenizer.ggml.tokens\":null},\"capabilities\":["     \
    "\"completion\",\"vision\",\"thinking\"]}"
static const char OLLAMA_SHOW_GEMMA4_VERBOSE[] =
    GEMMA4_INFO("[8,8,8,8,8,2,8,8,8,8,8,2,8,8,8,8,8,2,8,8,8,8,8,2,8,8,8,8,8,2]",
                "[true,true,true,true,true,false,true,true,true,true,true,false,"
                "true,true,true,true,true,false,true,true,true,true,true,false,"
                "true,true,true,true,true,false]");
/* ... and without "verbose": the arrays are null */
static const char OLLAMA_SHOW_GEMMA4[] = GEMMA4_INFO("null", "null");
/* POST /api/chat to qwen3 with a 64-token budget and no think field: all reasoning */
static const char OLLAMA_CHAT_EMPTY[] =
    "{\"model\":\"qwen3:8b\",\"created_at\":\"2025-10-02T09:12:44.101915Z\",\"message\":{\"role\":"
    "\"assistant\",\"content\":\"\",\"thinking\":\"Okay, the user is asking what 17 plus 25 is. "
    "Let me add them. 17 plus 20 is 37, and then plus 5 more is 42. Wait, let me double-check "
    "that\"},\"done_reason\":\"length\",\"done\":true,\"total_duration\":2719447291,"
    "\"load_duration\":61958333,\"prompt_eval_count\":23,\"prompt_eval_duration\":121871917,"
    "\"eval_count\":64,\"eval_duration\":2533693584}";
/* ... and with "think": false */
static const char OLLAMA_CHAT_ANSWER[] =
    "{\"model\":\"qwen3:8b\",\"created_at\":\"2025-10-02T09:12:45.3Z\",\"message\":{\"role\":"
    "\"assistant\",\"content\":\"42\"},\"done_reason\":\"stop\",\"done\":true,\"total_duration\":"
    "318220459,\"load_duration\":25583334,\"prompt_eval_count\":27,\"prompt_eval_duration\":"
    "89442042,\"eval_count\":3,\"eval_duration\":99120625}";

/* llama-server of this llama.cpp release (b1-80fb11a), captured */
static const char LLAMA_PROPS[] =
    "{\"default_generation_settings\":{\"params\":{\"seed\":4294967295,\"temperature\":"
    "0.800000011920929,\"top_k\":40,\"n_predict\":-1,\"chat_format\":\"Content-only\","
    "\"reasoning_format\":\"none\"},\"n_ctx\":2048},\"total_slots\":4,\"model_alias\":"
    "\"/work/shared/models/stories260K.gguf\",\"model_ftype\":\"(guessed) all F32\","
    "\"model_path\":\"/work/shared/models/stories260K.gguf\",\"modalities\":{\"vision\":false,"
    "\"video\":false,\"audio\":false},\"endpoint_slots\":true,\"endpoint_props\":false,"
    "\"endpoint_metrics\":true,\"chat_template\":\"{%- for message in messages -%}\","
    "\"bos_token\":\"<s>\",\"eos_token\":\"</s>\",\"build_info\":\"b1-80fb11a\",\"is_sleeping\":"
    "false,\"cors_proxy_enabled\":false}";
static const char LLAMA_MODELS[] =
    "{\"models\":[{\"name\":\"/work/shared/models/stories260K.gguf\",\"model\":"
    "\"/work/shared/models/stories260K.gguf\",\"modified_at\":\"\",\"size\":\"\",\"digest\":\"\","
    "\"type\":\"model\",\"description\":\"\",\"tags\":[\"\"],\"capabilities\":[\"completion\"],"
    "\"parameters\":\"\",\"details\":{\"parent_model\":\"\",\"format\":\"gguf\",\"family\":\"\","
    "\"families\":[\"\"],\"parameter_size\":\"\",\"quantization_level\":\"\"}}],\"object\":"
    "\"list\",\"data\":[{\"id\":\"/work/shared/models/stories260K.gguf\",\"aliases\":["
    "\"/work/shared/models/stories260K.gguf\"],\"tags\":[],\"object\":\"model\",\"created\":"
    "1795645084,\"owned_by\":\"llamacpp\",\"meta\":{\"vocab_type\":true,\"n_vocab\":512,\"n_ctx\":"
    "2048,\"n_ctx_train\":2048,\"n_embd\":64,\"n_params\":292800,\"size\":1171200,\"ftype\":"
    "\"(guessed) all F32\"}}]}";
/* POST /v1/chat/completions to a reasoning model on llama-server, max_tokens 64 */
static const char OPENAI_CHAT_EMPTY[] =
    "{\"choices\":[{\"finish_reason\":\"length\",\"index\":0,\"message\":{\"role\":\"assistant\","
    "\"content\":\"\",\"reasoning_content\":\"Okay, so I need to add 17 and 25. Let me start "
    "with the tens\"}}],\"created\":1759396364,\"model\":\"qwen3-8b\",\"system_fingerprint\":"
    "\"b6660-a1b2c3d\",\"object\":\"chat.completion\",\"usage\":{\"completion_tokens\":64,"
    "\"prompt_tokens\":17,\"total_tokens\":81},\"id\":\"chatcmpl-4Jq\",\"timings\":{\"prompt_n\":"
    "17,\"prompt_ms\":80.1,\"predicted_n\":64,\"predicted_ms\":1402.5}}";

/* ---- building nodes from them ------------------------------------------------------ */

static struct drv_doctor_node *node_new(const char *name, const char *url, enum drv_bench_kind k)
{
    struct drv_doctor_node *n = calloc(1, sizeof(*n));
    assert_non_null(n);
    drv_strlcpy(n->name, name, sizeof(n->name));
    drv_strlcpy(n->url, url, sizeof(n->url));
    n->kind = k;
    n->reachable = true;
    n->n_available = -1;
    return n;
}

static void feed(struct drv_doctor_node *n,
                 int (*parse)(struct drv_doctor_node *, const char *, size_t, struct drv_err *),
                 const char *body)
{
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(parse(n, body, strlen(body), &err), 0);
}

static void feed_hw(struct drv_doctor_node *n, const char *body, const char *from)
{
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_probe_profile_parse(body, strlen(body), &n->hw, &err), 0);
    n->have_hw = true;
    drv_strlcpy(n->hw_from, from, sizeof(n->hw_from));
}

static void feed_show(struct drv_doctor_node *n, int i, const char *body)
{
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_doctor_parse_show(&n->models[i], body, strlen(body), &err), 0);
}

/* A drover node as facts.c would leave it. */
static struct drv_doctor_node *drover_node(const char *name, const char *status, const char *hw,
                                           const char *ps, const char *tags, const char *show)
{
    struct drv_doctor_node *n = node_new(name, "http://127.0.0.1:11435", DRV_BENCH_KIND_DROVER);
    feed(n, drv_doctor_parse_status, status);
    feed_hw(n, hw, "GET /api/drover/hw");
    feed(n, drv_doctor_parse_ps, ps);
    feed(n, drv_doctor_parse_tags, tags);
    for (int i = 0; i < n->n_models; i++)
        feed_show(n, i, show);
    return n;
}

/* Runs the checks on node i of nodes[0..n). */
static void run(struct drv_doctor_node **nodes, int n, int i, struct drv_doctor_result *r)
{
    struct drv_doctor_node *flat = calloc((size_t)n, sizeof(*flat));
    assert_non_null(flat);
    for (int k = 0; k < n; k++)
        flat[k] = *nodes[k];
    struct drv_doctor_fleet fleet = {.nodes = flat, .n = n};
    drv_doctor_run_checks(&fleet, i, r);
    free(flat);
}

static struct drv_doctor_result *run1(struct drv_doctor_node *n)
{
    struct drv_doctor_result *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    run(&n, 1, 0, r);
    return r;
}

static const struct drv_doctor_finding *find(const struct drv_doctor_result *r, const char *id)
{
    for (int i = 0; i < r->n_findings; i++)
        if (strcmp(r->findings[i].id, id) == 0)
            return &r->findings[i];
    return NULL;
}

static const struct drv_doctor_skip *skipped(const struct drv_doctor_result *r, const char *id)
{
    for (int i = 0; i < r->n_skipped; i++)
        if (strcmp(r->skipped[i].id, id) == 0)
            return &r->skipped[i];
    return NULL;
}

#define assert_has(hay, needle)                                                                    \
    do {                                                                                           \
        if (strstr((hay), (needle)) == NULL)                                                       \
            fail_msg("\"%s\" lacks \"%s\"", (hay), (needle));                                      \
    } while (0)

/* ---- parsers ------------------------------------------------------------------------ */

static void parsers_read_the_recorded_answers(void **state)
{
    (void)state;
    struct drv_doctor_node *n =
        drover_node("d", STATUS_THREADS6, HW_XEON, PS_DROVER_CPU, TAGS_DROVER, SHOW_DROVER);
    assert_true(n->have_status);
    assert_int_equal(n->status.threads, 6);
    assert_true(n->status.threads_set);
    assert_int_equal(n->status.physical_cores, 2);
    assert_string_equal(n->status.kv_type, "f16");
    assert_int_equal(n->status.gpu_layers, -1);
    assert_string_equal(n->version, "0.1.0");
    assert_int_equal(n->n_models, 1);
    const struct drv_doctor_model *m = &n->models[0];
    assert_string_equal(m->name, "stories260K:latest");
    assert_true(m->size == 6414080 && m->size_vram == 0 && m->context_length == 2048);
    assert_true(m->file_size == 1185376);
    assert_int_equal(n->n_available, 1);
    assert_true(m->have_show && m->hp.n_block == 5 && m->hp.n_embd == 64 && m->hp.n_head == 8 &&
                m->hp.n_head_kv == 4 && m->hp.head_dim_k == 8 && m->hp.n_ctx_train == 2048);
    free(n);

    n = node_new("o", "http://gpu:11434", DRV_BENCH_KIND_OLLAMA);
    feed(n, drv_doctor_parse_ps, OLLAMA_PS_MISTRAL);
    feed_show(n, 0, OLLAMA_SHOW_MISTRAL_12T);
    m = &n->models[0];
    assert_int_equal(m->num_thread, 12);
    assert_int_equal(m->num_gpu, -1);
    assert_true(m->hp.n_vocab == 32768 && m->hp.n_head_kv == 8 && m->n_params == 7248023552ull);
    assert_string_equal(m->quant, "Q4_0");
    free(n);

    n = node_new("l", "http://apu:11436", DRV_BENCH_KIND_LLAMA_SERVER);
    feed(n, drv_doctor_parse_props, LLAMA_PROPS);
    feed(n, drv_doctor_parse_models, LLAMA_MODELS);
    assert_true(n->props.n_ctx == 2048 && n->props.total_slots == 4);
    assert_string_equal(n->version, "b1-80fb11a");
    assert_int_equal(n->n_available, 1);
    assert_int_equal(n->n_models, 1);
    assert_true(n->models[0].file_size == 1171200 && n->models[0].context_length == 2048);
    free(n);

    struct drv_doctor_think t = {0};
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(
        drv_doctor_parse_chat(&t, false, false, OLLAMA_CHAT_EMPTY, strlen(OLLAMA_CHAT_EMPTY), &err),
        0);
    assert_true(t.state == 1 && t.content_len == 0 && t.thinking_len > 100 && t.eval_count == 64);
    assert_string_equal(t.done_reason, "length");
    assert_int_equal(drv_doctor_parse_chat(&t, false, true, OLLAMA_CHAT_ANSWER,
                                           strlen(OLLAMA_CHAT_ANSWER), &err),
                     0);
    assert_true(t.off_state == 1 && t.off_content_len == 2);
    assert_string_equal(t.off_done_reason, "stop");
    memset(&t, 0, sizeof(t));
    assert_int_equal(
        drv_doctor_parse_chat(&t, true, false, OPENAI_CHAT_EMPTY, strlen(OPENAI_CHAT_EMPTY), &err),
        0);
    assert_true(t.content_len == 0 && t.thinking_len > 10 && t.eval_count == 64);
    /* a gateway's /api/ps lists every node's models; its own engine's are "local" */
    static const char gw_ps[] =
        "{\"models\":[{\"name\":\"stories260K:latest\",\"model\":\"stories260K:latest\",\"size\":"
        "6414080,\"size_vram\":0,\"context_length\":2048,\"drover_node\":\"local\"},{\"name\":"
        "\"mistral:latest\",\"model\":\"mistral:latest\",\"size\":5137025024,\"size_vram\":0,"
        "\"context_length\":4096,\"drover_node\":\"xeon\"}]}";
    n = node_new("local", "http://127.0.0.1:11435", DRV_BENCH_KIND_DROVER);
    n->gateway = true;
    feed(n, drv_doctor_parse_ps, gw_ps);
    assert_int_equal(n->n_models, 1);
    assert_string_equal(n->models[0].name, "stories260K:latest");
    n->gateway = false; /* a plain node's listing is all its own */
    feed(n, drv_doctor_parse_ps, gw_ps);
    assert_int_equal(n->n_models, 2);
    free(n);

    /* not what they should be */
    struct drv_doctor_node *bad = node_new("x", "http://x", DRV_BENCH_KIND_OLLAMA);
    assert_int_equal(drv_doctor_parse_ps(bad, "[]", 2, &err), DRV_EFORMAT);
    assert_int_equal(drv_doctor_parse_status(bad, "nope", 4, &err), DRV_EFORMAT);
    assert_int_equal(drv_doctor_parse_chat(&t, false, false, "{}", 2, &err), DRV_EFORMAT);
    free(bad);
}

/* ---- reachable ---------------------------------------------------------------------- */

static void reachable_says_who_does_not_answer(void **state)
{
    (void)state;
    struct drv_doctor_node *n = node_new("closed", "http://127.0.0.1:1", DRV_BENCH_KIND_AUTO);
    n->reachable = false;
    drv_strlcpy(n->error, "GET http://127.0.0.1:1/api/version: Couldn't connect to server",
                sizeof(n->error));
    struct drv_doctor_result *r = run1(n);
    const struct drv_doctor_finding *f = find(r, "reachable");
    assert_non_null(f);
    assert_int_equal(f->severity, DRV_DOCTOR_PROBLEM);
    assert_has(f->title, "does not answer");
    assert_has(f->evidence, "Couldn't connect");
    assert_has(f->fix, "[node closed]");
    assert_int_equal(r->n_findings, 1); /* nothing else is guessed */
    free(r);

    /* not configured, only tried: no problem */
    n->optional = true;
    r = run1(n);
    assert_int_equal(r->n_findings, 0);
    assert_non_null(skipped(r, "reachable"));
    free(r);

    /* an API key is missing */
    n->optional = false;
    n->reachable = true;
    drv_strlcpy(n->error, "GET http://127.0.0.1:1/api/version: HTTP 401 (it wants an API key)",
                sizeof(n->error));
    r = run1(n);
    assert_non_null(f = find(r, "reachable"));
    assert_has(f->fix, "api_key_file");
    free(r);

    /* configured as Ollama, answers like llama-server */
    n->error[0] = '\0';
    n->kind = DRV_BENCH_KIND_LLAMA_SERVER;
    n->config_kind = DRV_BENCH_KIND_OLLAMA;
    r = run1(n);
    assert_non_null(f = find(r, "reachable"));
    assert_int_equal(f->severity, DRV_DOCTOR_WARNING);
    assert_has(f->fix, "kind = openai");
    free(r);

    /* healthy: answers like what it is */
    n->config_kind = DRV_BENCH_KIND_OPENAI;
    r = run1(n);
    assert_null(find(r, "reachable"));
    free(r);
    free(n);
}

/* ---- threads ------------------------------------------------------------------------ */

static void threads_beyond_physical_cores(void **state)
{
    (void)state;
    struct drv_doctor_node *n =
        drover_node("cpu", STATUS_THREADS6, HW_XEON, PS_DROVER_CPU, TAGS_DROVER, SHOW_DROVER);
    struct drv_doctor_result *r = run1(n);
    const struct drv_doctor_finding *f = find(r, "threads");
    assert_non_null(f);
    assert_int_equal(f->severity, DRV_DOCTOR_PROBLEM);
    assert_string_equal(f->title, "6 compute threads on 2 physical cores");
    assert_has(f->evidence, "threads 6, set by --threads");
    assert_has(f->evidence, "(GET /api/drover/status)");
    assert_has(f->evidence, "2 physical cores, 2 logical CPUs: Intel(R) Xeon(R) Processor "
                            "(GET /api/drover/hw)");
    assert_has(f->fix, "drover serve --threads 2");
    free(r);
    free(n);

    n = drover_node("cpu", STATUS_DEFAULT, HW_XEON, PS_DROVER_CPU, TAGS_DROVER, SHOW_DROVER);
    r = run1(n);
    assert_null(find(r, "threads"));
    free(r);
    free(n);

    /* Ollama: num_thread in the Modelfile against the cores of the machine */
    n = node_new("xeon", "http://xeon:11434", DRV_BENCH_KIND_OLLAMA);
    feed(n, drv_doctor_parse_ps, OLLAMA_PS_MISTRAL);
    feed_show(n, 0, OLLAMA_SHOW_MISTRAL_12T);
    r = run1(n);
    assert_null(find(r, "threads"));
    assert_non_null(skipped(r, "threads")); /* the cores are unknown: said, not guessed */
    assert_has(skipped(r, "threads")->why, "num_thread 12");
    free(r);
    feed_hw(n, HW_SWAPPING, "hw = xeon.json");
    r = run1(n);
    assert_non_null(f = find(r, "threads"));
    assert_string_equal(f->title, "mistral:latest runs 12 threads on 6 physical cores");
    assert_has(f->evidence, "PARAMETER num_thread 12");
    assert_has(f->evidence, "6 physical cores, 12 logical CPUs");
    assert_has(f->fix, "PARAMETER num_thread 6");
    free(r);
    n->models[0].num_thread = 0; /* Ollama's default: the physical cores */
    r = run1(n);
    assert_null(find(r, "threads"));
    free(r);
    free(n);

    /* llama-server does not tell: not checked, with the reason */
    n = node_new("apu", "http://apu:11436", DRV_BENCH_KIND_LLAMA_SERVER);
    feed(n, drv_doctor_parse_props, LLAMA_PROPS);
    r = run1(n);
    assert_null(find(r, "threads"));
    assert_has(skipped(r, "threads")->why, "llama-server does not report its thread count");
    free(r);
    free(n);
}

/* ---- GPU unused / no backend ---------------------------------------------------------- */

static void gpu_unused_when_the_model_sits_in_ram(void **state)
{
    (void)state;
    struct drv_doctor_node *n =
        drover_node("gpu", STATUS_GPU0, HW_LAPTOP, LLAMA8_PS("6067855360", "0"), TAGS_LLAMA8,
                    SHOW_LLAMA8_DROVER);
    struct drv_doctor_result *r = run1(n);
    const struct drv_doctor_finding *f = find(r, "gpu-unused");
    assert_non_null(f);
    assert_int_equal(f->severity, DRV_DOCTOR_PROBLEM);
    assert_has(f->title, "llama3.1-8b:latest runs on the CPU although the node has a GPU "
                         "(NVIDIA GeForce RTX 3070 Laptop GPU)");
    assert_has(f->evidence, "size_vram 0");
    assert_has(f->evidence, "(GET /api/ps)");
    assert_has(f->evidence, "CUDA0 gpu: 8.00 GiB");
    assert_has(f->evidence, "gpu_layers 0 (GET /api/drover/status)");
    assert_has(f->fix, "without --gpu-layers 0");
    free(r);
    free(n);

    /* all of it on the GPU */
    n = drover_node("gpu", STATUS_DEFAULT, HW_LAPTOP, LLAMA8_PS("5457783808", "5457783808"),
                    TAGS_LLAMA8, SHOW_LLAMA8_DROVER);
    r = run1(n);
    assert_null(find(r, "gpu-unused"));
    assert_null(find(r, "partial-offload"));
    free(r);
    free(n);

    /* Ollama with 100% CPU and no knowledge of the machine: a hint, and what to do */
    n = node_new("ollama", "http://gpu:11434", DRV_BENCH_KIND_OLLAMA);
    feed(n, drv_doctor_parse_ps, OLLAMA_PS_MISTRAL);
    feed_show(n, 0, OLLAMA_SHOW_MISTRAL);
    r = run1(n);
    assert_non_null(f = find(r, "gpu-unused"));
    assert_int_equal(f->severity, DRV_DOCTOR_HINT);
    assert_has(f->fix, "hw = FILE");
    free(r);
    /* ... and a problem once the config names its machine */
    feed_hw(n, HW_LAPTOP, "hw = laptop.json");
    r = run1(n);
    assert_non_null(f = find(r, "gpu-unused"));
    assert_int_equal(f->severity, DRV_DOCTOR_PROBLEM);
    assert_has(f->fix, "CUDA_VISIBLE_DEVICES");
    free(r);
    free(n);
}

static void gpu_backend_missing(void **state)
{
    (void)state;
    struct drv_doctor_node *n = drover_node("gpu", STATUS_DEFAULT, HW_LAPTOP_CPU_BUILD,
                                            PS_DROVER_CPU, TAGS_DROVER, SHOW_DROVER);
    struct drv_doctor_result *r = run1(n);
    const struct drv_doctor_finding *f = find(r, "gpu-backend");
    assert_non_null(f);
    assert_int_equal(f->severity, DRV_DOCTOR_PROBLEM);
    assert_has(f->title, "an NVIDIA GPU is in the machine, but the node's llama.cpp has no "
                         "backend for it");
    assert_has(f->evidence, "NVIDIA GeForce RTX 3070 Laptop GPU, 8.00 GiB");
    assert_has(f->fix, "DROVER_CUDA=1 make build");
    free(r);
    free(n);

    n = drover_node("cpu", STATUS_DEFAULT, HW_XEON, PS_DROVER_CPU, TAGS_DROVER, SHOW_DROVER);
    r = run1(n);
    assert_null(find(r, "gpu-backend"));
    assert_null(find(r, "gpu-unused")); /* no GPU at all */
    free(r);
    free(n);
}

/* ---- partial offload, KV cache --------------------------------------------------------- */

static void partial_offload_that_need_not_be(void **state)
{
    (void)state;
    /* 4 slots x 4096 tokens of f16 KV (2 GiB) push 40 % of the weights off the GPU, which
     * had 6.2 GiB free when the node started (a browser holds the rest) */
    struct drv_doctor_node *n =
        drover_node("gpu", STATUS_DEFAULT, HW_LAPTOP, LLAMA8_PS("7067855360", "4240713216"),
                    TAGS_LLAMA8, SHOW_LLAMA8_DROVER);
    n->hw.devices[0].memory_free_bytes = 6657199308;
    struct drv_doctor_result *r = run1(n);
    const struct drv_doctor_finding *f = find(r, "partial-offload");
    assert_non_null(f);
    assert_int_equal(f->severity, DRV_DOCTOR_WARNING);
    assert_has(f->title, "llama3.1-8b:latest: only 60% on the GPU; all of it fits with one "
                         "sequence");
    assert_has(f->evidence, "size_vram 3.95 GiB (GET /api/ps)");
    assert_has(f->evidence, "KV cache f16 for 4 x 4096 tokens: 2.00 GiB");
    assert_has(f->fix, "drover serve --parallel 1");
    /* q8_0 would fit too, at the same context and slots */
    const struct drv_doctor_finding *k = find(r, "kv-cache");
    assert_non_null(k);
    assert_has(k->fix, "--kv-type q8_0");
    free(r);

    /* with the whole GPU free it fits as it is: it loaded when the GPU was fuller */
    n->hw.devices[0].memory_free_bytes = 8178892800;
    r = run1(n);
    assert_non_null(f = find(r, "partial-offload"));
    assert_has(f->title, "all of it fits the GPU's free memory now");
    assert_has(f->fix, "load it again");
    free(r);

    /* a model too large for the GPU at any setting: only a hint */
    n->hw.devices[0].memory_free_bytes = 2147483648;
    r = run1(n);
    assert_non_null(f = find(r, "partial-offload"));
    assert_int_equal(f->severity, DRV_DOCTOR_HINT);
    free(r);
    free(n);
}

/* ---- the shape from POST /api/show, read as drover fit reads a GGUF file ----------- */

static struct drv_doctor_model *shown(const char *name, uint64_t file_size, const char *show)
{
    struct drv_doctor_model *m = calloc(1, sizeof(*m));
    assert_non_null(m);
    drv_strlcpy(m->name, name, sizeof(m->name));
    m->file_size = file_size;
    m->num_gpu = -1;
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_doctor_parse_show(m, show, strlen(show), &err), 0);
    return m;
}

/* drover fit's model of a catalog entry: synth's exact tensors and shape */
static struct drv_fit_model *catalog_model(const char *name)
{
    struct drv_fit_model *fm = calloc(1, sizeof(*fm));
    assert_non_null(fm);
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_fit_model_load(name, fm, &err), 0);
    return fm;
}

static struct drv_fit_model *doctor_model(const struct drv_doctor_model *m)
{
    struct drv_fit_model *fm = calloc(1, sizeof(*fm));
    assert_non_null(fm);
    assert_int_equal(drv_doctor_fit_model(m, fm), 0);
    return fm;
}

/* The KV cache is fit's formula on the shape, so the doctor's must be the
 * catalog model's to the byte, at any context and cache type. */
static void assert_same_kv(const struct drv_fit_model *a, const struct drv_fit_model *b)
{
    const uint32_t ctx[] = {2048, 8192, 131072};
    for (size_t i = 0; i < sizeof(ctx) / sizeof(ctx[0]); i++) {
        assert_int_equal(drv_fit_kv_bytes(a, DRV_FIT_KV_F16, ctx[i], 1),
                         drv_fit_kv_bytes(b, DRV_FIT_KV_F16, ctx[i], 1));
        assert_int_equal(drv_fit_kv_bytes(a, DRV_FIT_KV_Q8_0, ctx[i], 2),
                         drv_fit_kv_bytes(b, DRV_FIT_KV_Q8_0, ctx[i], 2));
    }
    assert_int_equal(drv_fit_kv_bytes_per_token(a, DRV_FIT_KV_F16),
                     drv_fit_kv_bytes_per_token(b, DRV_FIT_KV_F16));
}

static double expert_share(const struct drv_fit_model *fm)
{
    uint64_t layers = 0;
    for (uint32_t il = 0; il < fm->n_layer; il++)
        layers += fm->layer_bytes[il];
    return (double)fm->expert_bytes / (double)layers;
}

static void show_gemma3_slides_as_llama_cpp_does(void **state)
{
    (void)state;
    struct drv_doctor_model *m = shown("gemma3:4b", 3338801804ull, OLLAMA_SHOW_GEMMA3);
    struct drv_fit_model *fm = doctor_model(m), *cat = catalog_model("gemma3:4b");
    assert_string_equal(fm->arch, "gemma3");
    assert_int_equal(fm->n_layer, 34);
    assert_int_equal(fm->n_swa, 1024);
    assert_int_equal(fm->head_dim_k, 256);
    assert_int_equal(fm->n_ff, 10240); /* the file's, not a guess */
    assert_false(fm->has_swa_layers);  /* the file lists none: the architecture's 5:1 */
    int sliding = 0;
    for (uint32_t il = 0; il < fm->n_layer; il++) {
        assert_int_equal(drv_fit_layer_is_swa(fm, il), il % 6 < 5);
        assert_int_equal(drv_fit_layer_is_swa(fm, il), drv_fit_layer_is_swa(cat, il));
        assert_int_equal(fm->layer_n_head_kv[il], 4);
        sliding += drv_fit_layer_is_swa(fm, il);
    }
    assert_int_equal(sliding, 29);
    assert_same_kv(fm, cat);
    /* 5 global layers of 34 grow with the context: about a fifth of uniform layers' */
    assert_true(drv_fit_kv_bytes(fm, DRV_FIT_KV_F16, 131072, 1) * 5 <
                34ull * 131072 * 2 * 4 * 256 * 2);
    free(fm);
    free(cat);
    free(m);
}

static void show_qwen3moe_reads_few_experts(void **state)
{
    (void)state;
    struct drv_doctor_model *m = shown("qwen3:30b", 18556701216ull, OLLAMA_SHOW_QWEN3MOE);
    assert_int_equal(m->hp.n_ff_exp, 768);
    struct drv_fit_model *fm = doctor_model(m), *cat = catalog_model("qwen3:30b");
    assert_int_equal(fm->n_expert, 128);
    assert_int_equal(fm->n_expert_used, 8);
    assert_int_equal(fm->n_swa, 0);
    assert_same_kv(fm, cat);
    /* the experts' share of the blocks, from the shape: within a few % of the
     * real tensors' (attention and router are ~3 % of a block) */
    double share = expert_share(fm), real = expert_share(cat);
    assert_true(share > 0.9 && share < 1.0);
    assert_true(fabs(share - real) < 0.03);
    /* so a token reads about a tenth of the weights, as fit says of the file */
    struct drv_hw *hw = calloc(1, sizeof(*hw));
    struct drv_fit_result *r = calloc(1, sizeof(*r)), *rc = calloc(1, sizeof(*rc));
    assert_true(hw && r && rc);
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_probe_profile_parse(HW_LAPTOP, strlen(HW_LAPTOP), hw, &err), 0);
    struct drv_fit_params p = drv_fit_default_params();
    drv_fit_plan(fm, hw, &p, r);
    drv_fit_plan(cat, hw, &p, rc);
    assert_true(r->read_per_token * 5 < fm->total_bytes);
    assert_true(r->read_per_token < rc->read_per_token * 1.3 &&
                rc->read_per_token < r->read_per_token * 1.3);
    free(hw);
    free(r);
    free(rc);
    free(fm);
    free(cat);
    free(m);
}

static void show_gemma4_arrays_give_each_layer(void **state)
{
    (void)state;
    struct drv_doctor_model *m = shown("gemma4:26b", 18000000000ull, OLLAMA_SHOW_GEMMA4_VERBOSE);
    struct drv_fit_model *fm = doctor_model(m), *cat = catalog_model("gemma4:26b");
    assert_true(fm->per_layer_kv && fm->has_swa_layers);
    assert_int_equal(fm->head_dim_k, 512);
    assert_int_equal(fm->head_dim_k_swa, 256);
    assert_int_equal(fm->head_dim_v_swa, 256);
    assert_int_equal(fm->n_expert, 128);
    assert_int_equal(fm->n_expert_used, 8);
    for (uint32_t il = 0; il < fm->n_layer; il++) {
        assert_int_equal(fm->layer_n_head_kv[il], il % 6 < 5 ? 8 : 2);
        assert_int_equal(fm->layer_n_head_kv[il], cat->layer_n_head_kv[il]);
        assert_int_equal(fm->swa_layer[il], il % 6 < 5);
    }
    assert_same_kv(fm, cat);
    double share = expert_share(fm);
    assert_true(share > 0.85 && share < 1.0);
    free(fm);
    free(m);

    /* without "verbose" the arrays are null: gemma4's 5:1 pattern still holds,
     * and every layer gets n_head kv heads, which can only over-count */
    m = shown("gemma4:26b", 18000000000ull, OLLAMA_SHOW_GEMMA4);
    fm = doctor_model(m);
    assert_false(fm->has_swa_layers);
    for (uint32_t il = 0; il < fm->n_layer; il++) {
        assert_int_equal(drv_fit_layer_is_swa(fm, il), drv_fit_layer_is_swa(cat, il));
        assert_int_equal(fm->layer_n_head_kv[il], 16);
    }
    assert_true(drv_fit_kv_bytes(fm, DRV_FIT_KV_F16, 8192, 1) >
                drv_fit_kv_bytes(cat, DRV_FIT_KV_F16, 8192, 1));
    free(fm);
    free(cat);
    free(m);
}

/* What the user sees: the KV cache of a partly offloaded gemma3 is its windowed
 * cache, not 34 full layers (which would be 17 GiB at this context). */
static void partial_offload_counts_the_sliding_window(void **state)
{
    (void)state;
    struct drv_doctor_node *n = node_new("ollama", "http://gpu:11434", DRV_BENCH_KIND_OLLAMA);
    feed(n, drv_doctor_parse_ps, OLLAMA_PS_GEMMA3);
    feed(n, drv_doctor_parse_tags, OLLAMA_TAGS_GEMMA3);
    feed_show(n, 0, OLLAMA_SHOW_GEMMA3);
    feed_hw(n, HW_LAPTOP, "hw = laptop.json");
    n->hw.devices[0].memory_free_bytes = 5905580032; /* 5.5 GiB */
    struct drv_doctor_result *r = run1(n);
    const struct drv_doctor_finding *f = find(r, "partial-offload");
    assert_non_null(f);
    assert_has(f->title, "gemma3:4b: only 76% on the GPU; all of it fits with a smaller context");
    struct drv_fit_model *cat = catalog_model("gemma3:4b");
    char kv[32], line[96];
    drv_fmt_bytes(drv_fit_kv_bytes(cat, DRV_FIT_KV_F16, 131072, 1), kv, sizeof(kv));
    snprintf(line, sizeof(line), "KV cache f16 for 1 x 131072 tokens: %s (drover fit", kv);
    assert_has(f->evidence, line);
    assert_has(f->fix, "OLLAMA_CONTEXT_LENGTH=65536");
    free(cat);
    free(r);
    free(n);
}

/* ---- thinking budget ----------------------------------------------------------------- */

static void thinking_budget_spent_on_reasoning(void **state)
{
    (void)state;
    struct drv_doctor_node *n = node_new("gpu", "http://gpu:11434", DRV_BENCH_KIND_OLLAMA);
    struct drv_doctor_think *t = &n->think;
    drv_strlcpy(t->model, "qwen3:8b", sizeof(t->model));
    drv_strlcpy(t->route, "POST /api/chat", sizeof(t->route));
    t->budget = 64;
    struct drv_err err;
    drv_err_init(&err);
    drv_doctor_parse_chat(t, false, false, OLLAMA_CHAT_EMPTY, strlen(OLLAMA_CHAT_EMPTY), &err);
    drv_doctor_parse_chat(t, false, true, OLLAMA_CHAT_ANSWER, strlen(OLLAMA_CHAT_ANSWER), &err);
    struct drv_doctor_result *r = run1(n);
    const struct drv_doctor_finding *f = find(r, "thinking-budget");
    assert_non_null(f);
    assert_int_equal(f->severity, DRV_DOCTOR_PROBLEM);
    assert_string_equal(f->title, "qwen3:8b spends a 64-token budget thinking and answers nothing");
    assert_has(f->evidence, "answer 0 chars, reasoning");
    assert_has(f->evidence, "done_reason \"length\"");
    assert_has(f->evidence, "the same with \"think\":false: answer 2 chars, done_reason \"stop\"");
    assert_has(f->fix, "\"think\": false at the top level");
    assert_has(f->fix, "not inside \"options\"");
    free(r);

    /* an answer: healthy */
    memset(t, 0, sizeof(*t));
    drv_strlcpy(t->route, "POST /api/chat", sizeof(t->route));
    drv_doctor_parse_chat(t, false, false, OLLAMA_CHAT_ANSWER, strlen(OLLAMA_CHAT_ANSWER), &err);
    r = run1(n);
    assert_null(find(r, "thinking-budget"));
    free(r);

    /* llama-server: the OpenAI wire's switch */
    n->kind = DRV_BENCH_KIND_LLAMA_SERVER;
    memset(t, 0, sizeof(*t));
    drv_strlcpy(t->model, "qwen3-8b", sizeof(t->model));
    drv_strlcpy(t->route, "POST /v1/chat/completions", sizeof(t->route));
    t->budget = 64;
    drv_doctor_parse_chat(t, true, false, OPENAI_CHAT_EMPTY, strlen(OPENAI_CHAT_EMPTY), &err);
    r = run1(n);
    assert_non_null(f = find(r, "thinking-budget"));
    assert_has(f->evidence, "finish_reason \"length\"");
    assert_has(f->fix, "\"chat_template_kwargs\": {\"enable_thinking\": false}");
    assert_has(f->fix, "--reasoning-budget 0");
    free(r);

    /* not probed: said why */
    memset(t, 0, sizeof(*t));
    drv_strlcpy(t->why, "probes are off (--no-probe)", sizeof(t->why));
    r = run1(n);
    assert_has(skipped(r, "thinking-budget")->why, "--no-probe");
    free(r);
    free(n);
}

/* ---- regression and the roofline --------------------------------------------------- */

static void set_speed(struct drv_doctor_node *n, const char *model, const double *tg, int k)
{
    n->speed.state = 1;
    drv_strlcpy(n->speed.model, model, sizeof(n->speed.model));
    n->speed.n = k;
    n->speed.gen_tokens = 32;
    drv_strlcpy(n->speed.source, "server", sizeof(n->speed.source));
    for (int i = 0; i < k; i++)
        n->speed.tg[i] = tg[i];
}

static void regression_beyond_the_spread(void **state)
{
    (void)state;
    struct drv_doctor_node *n =
        drover_node("cpu", STATUS_DEFAULT, HW_XEON, PS_DROVER_CPU, TAGS_DROVER, SHOW_DROVER);
    double now[] = {100, 104, 98};
    set_speed(n, "stories260K:latest", now, 3);
    struct drv_doctor_baseline *b = &n->baseline;
    b->state = 1;
    b->ts = 1764000000;
    drv_strlcpy(b->target, "http://127.0.0.1:11435", sizeof(b->target));
    drv_strlcpy(b->db, "/tmp/h.db", sizeof(b->db));
    double then[] = {300, 310, 295, 305, 290};
    for (int i = 0; i < 5; i++)
        b->tg[b->n++] = then[i];
    struct drv_doctor_result *r = run1(n);
    const struct drv_doctor_finding *f = find(r, "regression");
    assert_non_null(f);
    assert_int_equal(f->severity, DRV_DOCTOR_PROBLEM);
    assert_string_equal(f->title, "stories260K:latest generates 67 % slower than its baseline "
                                  "(100.0 vs 300.0 tok/s)");
    assert_has(f->evidence, "now: tg 100.0 tok/s, median of 3 probes of 32 tokens, range "
                            "98.0-104.0");
    assert_has(f->evidence, "baseline: tg 300.0 tok/s, median of 5 repetitions, range "
                            "290.0-310.0");
    assert_has(f->evidence, "/tmp/h.db");
    assert_has(f->fix, "drover bench http://127.0.0.1:11435 --model stories260K:latest "
                       "--baseline");
    free(r);

    /* the same speed, within the spread: healthy */
    double same[] = {295, 312, 288};
    set_speed(n, "stories260K:latest", same, 3);
    r = run1(n);
    assert_null(find(r, "regression"));
    free(r);
    /* 15 % slower but overlapping: run-to-run noise */
    double bit[] = {255, 250, 292};
    set_speed(n, "stories260K:latest", bit, 3);
    r = run1(n);
    assert_null(find(r, "regression"));
    free(r);
    /* no baseline: not checked, with the command that records one */
    b->state = 0;
    drv_strlcpy(b->why, "no bench history at /tmp/h.db", sizeof(b->why));
    r = run1(n);
    assert_has(skipped(r, "regression")->why, "--baseline");
    free(r);
    free(n);
}

static void slow_against_the_roofline(void **state)
{
    (void)state;
    /* mistral 7B Q4_0 (4.1 GB) on the Xeon at 52.1 GB/s: 12.7 tok/s roofline, 3.8-7.6 */
    struct drv_doctor_node *n = node_new("xeon", "http://xeon:11434", DRV_BENCH_KIND_OLLAMA);
    feed(n, drv_doctor_parse_ps, OLLAMA_PS_MISTRAL);
    feed_show(n, 0, OLLAMA_SHOW_MISTRAL);
    n->models[0].file_size = 4109865159;
    feed_hw(n, HW_SWAPPING, "hw = xeon.json");
    double slow[] = {1.2, 1.3, 1.1};
    set_speed(n, "mistral:latest", slow, 3);
    struct drv_doctor_result *r = run1(n);
    const struct drv_doctor_finding *f = find(r, "slow");
    assert_non_null(f);
    assert_int_equal(f->severity, DRV_DOCTOR_WARNING);
    assert_has(f->title, "mistral:latest generates 1.2 tok/s, under half of what the CPU allows "
                         "(4-8 tok/s)");
    assert_has(f->evidence, "52.1 GB/s / 3.83 GiB read per token = 13 tok/s");
    assert_has(f->evidence, "hw = xeon.json");
    free(r);
    double fine[] = {5.5, 5.9, 5.6};
    set_speed(n, "mistral:latest", fine, 3);
    r = run1(n);
    assert_null(find(r, "slow"));
    free(r);
    free(n);

    /* a tiny model: the roofline does not apply, and the doctor says so */
    n = drover_node("cpu", STATUS_DEFAULT, HW_XEON, PS_DROVER_CPU, TAGS_DROVER, SHOW_DROVER);
    double any[] = {400, 410, 405};
    set_speed(n, "stories260K:latest", any, 3);
    r = run1(n);
    assert_null(find(r, "slow"));
    assert_has(skipped(r, "slow")->why, "below 100 MiB");
    free(r);
    free(n);
}

/* ---- engine versions ----------------------------------------------------------------- */

static void engine_versions_across_the_fleet(void **state)
{
    (void)state;
    struct drv_doctor_node *old = node_new("gpu", "http://gpu:11434", DRV_BENCH_KIND_OLLAMA);
    struct drv_doctor_node *cur = node_new("xeon", "http://xeon:11434", DRV_BENCH_KIND_OLLAMA);
    drv_strlcpy(old->version, "0.9.6", sizeof(old->version));
    drv_strlcpy(cur->version, "0.12.3", sizeof(cur->version));
    struct drv_doctor_node *both[] = {old, cur};
    struct drv_doctor_result *r = calloc(1, sizeof(*r));
    run(both, 2, 0, r);
    const struct drv_doctor_finding *f = find(r, "engine-version");
    assert_non_null(f);
    assert_int_equal(f->severity, DRV_DOCTOR_PROBLEM);
    assert_string_equal(f->title, "Ollama 0.9.6 is a major version behind 0.12.3 on xeon");
    assert_has(f->evidence, "gpu: Ollama 0.9.6 (GET /api/version)");
    assert_has(f->evidence, "xeon: Ollama 0.12.3 (GET /api/version)");
    assert_has(f->fix, "ollama.com/install.sh");
    run(both, 2, 1, r); /* the newer one is fine */
    assert_null(find(r, "engine-version"));
    drv_strlcpy(old->version, "0.12.1", sizeof(old->version));
    run(both, 2, 0, r);
    assert_non_null(f = find(r, "engine-version"));
    assert_int_equal(f->severity, DRV_DOCTOR_WARNING);
    drv_strlcpy(old->version, "0.12.3", sizeof(old->version));
    run(both, 2, 0, r);
    assert_null(find(r, "engine-version"));
    /* llama-server builds */
    old->kind = cur->kind = DRV_BENCH_KIND_LLAMA_SERVER;
    drv_strlcpy(old->version, "b5200-abc1234", sizeof(old->version));
    drv_strlcpy(cur->version, "b6660-a1b2c3d", sizeof(cur->version));
    run(both, 2, 0, r);
    assert_non_null(f = find(r, "engine-version"));
    assert_has(f->title, "llama-server b5200-abc1234 is a version behind b6660-a1b2c3d");
    assert_has(f->evidence, "GET /props build_info");
    free(r);
    free(old);
    free(cur);
}

/* ---- ROCm, memory, context ---------------------------------------------------------- */

static void rocm_on_the_apu(void **state)
{
    (void)state;
    struct drv_doctor_node *n = node_new("this machine", "", DRV_BENCH_KIND_AUTO);
    feed_hw(n, HW_APU, "drover hw");
    struct drv_doctor_result *r = run1(n);
    const struct drv_doctor_finding *f = find(r, "rocm");
    assert_non_null(f);
    assert_string_equal(f->title, "ROCm 7.2.1 has no rocBLAS kernels for gfx1103 (an APU)");
    assert_has(f->evidence, "card0: gfx1103, VRAM 8.00 GiB, GTT 27.00 GiB (drover hw)");
    assert_has(f->fix, "Vulkan");
    bool override = false;
    for (int i = 0; i < r->n_findings; i++)
        override |= strstr(r->findings[i].title, "HSA_OVERRIDE_GFX_VERSION=11.0.2") != NULL;
    assert_true(override);
    free(r);
    feed_hw(n, HW_XEON, "drover hw");
    r = run1(n);
    assert_null(find(r, "rocm"));
    free(r);
    free(n);
}

static void memory_swap_and_keep_alive(void **state)
{
    (void)state;
    struct drv_doctor_node *n = node_new("xeon", "http://xeon:11434", DRV_BENCH_KIND_OLLAMA);
    feed(n, drv_doctor_parse_ps, OLLAMA_PS_MISTRAL);
    feed_hw(n, HW_SWAPPING, "hw = xeon.json");
    struct drv_doctor_result *r = run1(n);
    const struct drv_doctor_finding *f = find(r, "memory");
    assert_non_null(f);
    assert_int_equal(f->severity, DRV_DOCTOR_PROBLEM);
    assert_string_equal(f->title, "swap in use with 2.00 GiB of 78.00 GiB RAM available");
    assert_has(f->evidence, "swap used 4.00 GiB");
    free(r);
    free(n);

    n = drover_node("gpu", STATUS_GPU0, HW_XEON, PS_DROVER_CPU, TAGS_DROVER, SHOW_DROVER);
    r = run1(n);
    assert_non_null(f = find(r, "memory"));
    assert_string_equal(f->title, "keep-alive 0: every request loads its model again");
    assert_has(f->fix, "--keep-alive 5m");
    free(r);
    free(n);

    n = drover_node("cpu", STATUS_DEFAULT, HW_XEON, PS_DROVER_CPU, TAGS_DROVER, SHOW_DROVER);
    r = run1(n);
    assert_null(find(r, "memory"));
    free(r);
    free(n);
}

static void context_cut_by_ollama(void **state)
{
    (void)state;
    struct drv_doctor_node *n = node_new("gpu", "http://gpu:11434", DRV_BENCH_KIND_OLLAMA);
    feed(n, drv_doctor_parse_ps, OLLAMA_PS_MISTRAL);
    feed_show(n, 0, OLLAMA_SHOW_MISTRAL);
    struct drv_doctor_result *r = run1(n);
    const struct drv_doctor_finding *f = find(r, "context");
    assert_non_null(f);
    assert_int_equal(f->severity, DRV_DOCTOR_HINT);
    assert_has(f->evidence, "context_length 4096 (GET /api/ps)");
    assert_has(f->evidence, "trained for 32768 tokens");
    assert_has(f->fix, "OLLAMA_CONTEXT_LENGTH=8192");
    free(r);
    n->models[0].context_length = 16384;
    r = run1(n);
    assert_null(find(r, "context"));
    free(r);
    free(n);
}

/* drover's own /metrics counts loads and cut prompts: churn and truncation. */
#define METRICS_CHURN                                                                              \
    "# HELP drover_requests_total Generation and embedding requests accepted.\n"                   \
    "# TYPE drover_requests_total counter\n"                                                       \
    "drover_requests_total 9\n"                                                                    \
    "drover_requests_total{model=\"qwen2.5:3b\"} 6\n"                                              \
    "drover_requests_total{model=\"stories260K\"} 3\n"                                             \
    "# TYPE drover_model_loads_total counter\n"                                                    \
    "drover_model_loads_total{model=\"qwen2.5:3b\"} 5\n"                                           \
    "drover_model_loads_total{model=\"stories260K\"} 1\n"                                          \
    "# TYPE drover_prompts_truncated_total counter\n"                                              \
    "drover_prompts_truncated_total{model=\"qwen2.5:3b\"} 0\n"                                     \
    "drover_prompts_truncated_total{model=\"stories260K\"} 2\n"

static void churn_and_cut_prompts_from_drover_metrics(void **state)
{
    (void)state;
    struct drv_doctor_node *n =
        drover_node("cpu", STATUS_DEFAULT, HW_XEON, PS_DROVER_CPU, TAGS_DROVER, SHOW_DROVER);
    feed(n, drv_doctor_parse_metrics, METRICS_CHURN);
    assert_int_equal(n->n_counts, 2);
    struct drv_doctor_result *r = run1(n);
    const struct drv_doctor_finding *f = find(r, "memory");
    assert_non_null(f);
    assert_int_equal(f->severity, DRV_DOCTOR_WARNING);
    assert_string_equal(
        f->title, "qwen2.5:3b was loaded 5 times for 6 requests: it is unloaded between them");
    assert_has(f->evidence, "drover_model_loads_total 5, drover_requests_total 6 (GET /metrics)");
    assert_has(f->fix, "--keep-alive 30m");
    assert_non_null(f = find(r, "context"));
    assert_string_equal(f->title, "2 prompts to stories260K were cut to fit its context");
    assert_has(f->evidence, "drover_prompts_truncated_total 2 of 3 requests");
    assert_has(f->fix, "--ctx 8192");
    free(r);

    /* healthy: loaded once, nothing cut */
    feed(n, drv_doctor_parse_metrics,
         "drover_requests_total{model=\"qwen2.5:3b\"} 40\n"
         "drover_model_loads_total{model=\"qwen2.5:3b\"} 2\n"
         "drover_prompts_truncated_total{model=\"qwen2.5:3b\"} 0\n");
    r = run1(n);
    assert_null(find(r, "memory"));
    assert_null(find(r, "context"));
    free(r);
    free(n);
}

/* ---- the whole: order, text, JSON ---------------------------------------------------- */

static void report_puts_problems_first(void **state)
{
    (void)state;
    struct drv_doctor_node *nodes = calloc(3, sizeof(*nodes));
    struct drv_doctor_node *me = node_new("this machine", "", DRV_BENCH_KIND_AUTO);
    feed_hw(me, HW_XEON, "drover hw");
    struct drv_doctor_node *ok =
        drover_node("healthy", STATUS_DEFAULT, HW_XEON, PS_DROVER_CPU, TAGS_DROVER, SHOW_DROVER);
    struct drv_doctor_node *bad =
        drover_node("threads6", STATUS_THREADS6, HW_XEON, PS_DROVER_CPU, TAGS_DROVER, SHOW_DROVER);
    bad->models[0].size_vram = 0;
    nodes[0] = *me;
    nodes[1] = *ok;
    nodes[2] = *bad;
    struct drv_doctor_result *rs = calloc(3, sizeof(*rs));
    struct drv_doctor_fleet fleet = {.nodes = nodes, .n = 3};
    for (int i = 0; i < 3; i++)
        drv_doctor_run_checks(&fleet, i, &rs[i]);
    assert_int_equal(drv_doctor_count(rs, 3, DRV_DOCTOR_PROBLEM), 1);
    assert_int_equal(drv_doctor_count(rs, 3, DRV_DOCTOR_WARNING), 0);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    drv_doctor_write_text(f, nodes, rs, 3);
    fclose(f);
    assert_has(text, "drover doctor: 1 problem, 0 warnings, 0 hints on 2 nodes and this machine");
    char *p_bad = strstr(text, "== threads6"), *p_ok = strstr(text, "== healthy");
    assert_non_null(p_bad);
    assert_non_null(p_ok);
    assert_true(p_bad < p_ok); /* the node with a problem first */
    assert_has(text, "PROBLEM  threads: 6 compute threads on 2 physical cores");
    assert_has(text, "  fix       drover serve --threads 2");
    free(text);

    char *js = drv_doctor_json(nodes, rs, 3);
    json_t *j = json_loads(js, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "problems")), 1);
    json_t *first = json_array_get(json_object_get(j, "nodes"), 0);
    assert_string_equal(json_string_value(json_object_get(first, "name")), "threads6");
    json_t *fi = json_array_get(json_object_get(first, "findings"), 0);
    assert_string_equal(json_string_value(json_object_get(fi, "severity")), "problem");
    assert_true(json_array_size(json_object_get(fi, "evidence")) >= 2);
    json_decref(j);
    free(js);
    free(rs);
    free(nodes);
    free(me);
    free(ok);
    free(bad);
}

static void every_check_has_an_id_and_a_summary(void **state)
{
    (void)state;
    int n = 0;
    for (const struct drv_doctor_check *c = drv_doctor_checks; c->id; c++, n++) {
        assert_non_null(c->summary);
        assert_non_null(c->run);
        assert_ptr_equal(drv_doctor_check_find(c->id), c);
    }
    assert_true(n >= 12);
    assert_true(drv_doctor_url_is_local("http://127.0.0.1:11435"));
    assert_true(drv_doctor_url_is_local("http://localhost/"));
    assert_true(drv_doctor_url_is_local("http://[::1]:8080"));
    assert_false(drv_doctor_url_is_local("http://10.0.0.20:11434"));
}

/* ---- collection against canned nodes on loopback ------------------------------------ */

enum canned { CANNED_OLLAMA, CANNED_LLAMA };

static void reply(struct drv_http_req *req, unsigned status, const char *body)
{
    drv_http_respond(req, status, "application/json", body, strlen(body));
}

static void c_version(struct drv_http_req *req, void *ud)
{
    if (*(enum canned *)ud == CANNED_OLLAMA)
        reply(req, 200, "{\"version\":\"0.12.3\"}");
    else
        reply(req, 404, "{\"error\":{\"code\":404,\"message\":\"File Not Found\"}}");
}

static void c_ollama_only(struct drv_http_req *req, void *ud)
{
    if (*(enum canned *)ud != CANNED_OLLAMA) {
        reply(req, 404, "{\"error\":{\"code\":404,\"message\":\"File Not Found\"}}");
        return;
    }
    const char *path = drv_http_req_path(req);
    if (strcmp(path, "/api/ps") == 0)
        reply(req, 200, OLLAMA_PS_MISTRAL);
    else if (strcmp(path, "/api/tags") == 0)
        reply(req, 200,
              "{\"models\":[{\"name\":\"mistral:latest\",\"model\":\"mistral:latest\","
              "\"modified_at\":\"2025-06-04T14:38:31.83753-07:00\",\"size\":4109865159,"
              "\"digest\":\"2ae6f6dd7a3d\",\"details\":{\"format\":\"gguf\",\"family\":\"llama\","
              "\"parameter_size\":\"7.2B\",\"quantization_level\":\"Q4_0\"}}]}");
    else if (strcmp(path, "/api/show") == 0)
        reply(req, 200, OLLAMA_SHOW_MISTRAL_12T);
    else if (strcmp(path, "/api/generate") == 0)
        reply(req, 200,
              "{\"model\":\"mistral:latest\",\"created_at\":\"2025-10-02T09:12:44Z\",\"response\":"
              "\" the\",\"done\":true,\"done_reason\":\"length\",\"total_duration\":2719447291,"
              "\"load_duration\":61958333,\"prompt_eval_count\":60,\"prompt_eval_duration\":"
              "121871917,\"eval_count\":32,\"eval_duration\":4000000000}");
    else if (strcmp(path, "/api/chat") == 0) {
        size_t len;
        const char *body = drv_http_req_body(req, &len);
        reply(req, 200, strstr(body, "\"think\":false") ? OLLAMA_CHAT_ANSWER : OLLAMA_CHAT_EMPTY);
    }
}

static void c_llama_only(struct drv_http_req *req, void *ud)
{
    if (*(enum canned *)ud != CANNED_LLAMA) {
        reply(req, 404, "404 page not found");
        return;
    }
    const char *path = drv_http_req_path(req);
    if (strcmp(path, "/props") == 0)
        reply(req, 200, LLAMA_PROPS);
    else if (strcmp(path, "/v1/models") == 0)
        reply(req, 200, LLAMA_MODELS);
    else if (strcmp(path, "/v1/completions") == 0)
        reply(req, 200,
              "{\"choices\":[{\"text\":\" Once upon a time\",\"index\":0,\"logprobs\":null,"
              "\"finish_reason\":\"length\"}],\"created\":1759396364,\"model\":\"stories\","
              "\"object\":\"text_completion\",\"usage\":{\"completion_tokens\":32,"
              "\"prompt_tokens\":60,\"total_tokens\":92},\"id\":\"cmpl-1\",\"timings\":{"
              "\"prompt_n\":60,\"prompt_ms\":3.2,\"predicted_n\":32,\"predicted_ms\":64.0}}");
    else if (strcmp(path, "/v1/chat/completions") == 0)
        reply(req, 200, OPENAI_CHAT_EMPTY);
}

static const struct drv_http_route canned_routes[] = {
    {"GET", "/api/version", c_version},        {"GET", "/api/ps", c_ollama_only},
    {"GET", "/api/tags", c_ollama_only},       {"POST", "/api/show", c_ollama_only},
    {"POST", "/api/generate", c_ollama_only},  {"POST", "/api/chat", c_ollama_only},
    {"GET", "/props", c_llama_only},           {"GET", "/v1/models", c_llama_only},
    {"POST", "/v1/completions", c_llama_only}, {"POST", "/v1/chat/completions", c_llama_only},
};

static struct drv_http_server *canned_start(enum canned *mode, char *url, size_t size)
{
    struct drv_http_params p = drv_http_default_params();
    struct drv_err err;
    drv_err_init(&err);
    struct drv_http_server *s = drv_http_server_new(
        &p, canned_routes, sizeof(canned_routes) / sizeof(canned_routes[0]), mode, &err);
    if (s == NULL)
        fail_msg("server_new: %s", err.msg);
    snprintf(url, size, "http://127.0.0.1:%u", drv_http_server_port(s));
    return s;
}

static void collects_and_probes_canned_nodes(void **state)
{
    (void)state;
    enum canned om = CANNED_OLLAMA, lm = CANNED_LLAMA;
    char ou[64], lu[64];
    struct drv_http_server *os = canned_start(&om, ou, sizeof(ou));
    struct drv_http_server *ls = canned_start(&lm, lu, sizeof(lu));
    struct drv_doctor_node *nodes = calloc(4, sizeof(*nodes));
    drv_strlcpy(nodes[0].name, "this machine", sizeof(nodes[0].name));
    drv_strlcpy(nodes[1].name, "ollama", sizeof(nodes[1].name));
    drv_strlcpy(nodes[1].url, ou, sizeof(nodes[1].url));
    drv_strlcpy(nodes[2].name, "llama", sizeof(nodes[2].name));
    drv_strlcpy(nodes[2].url, lu, sizeof(nodes[2].url));
    drv_strlcpy(nodes[3].name, "closed", sizeof(nodes[3].name));
    drv_strlcpy(nodes[3].url, "http://127.0.0.1:1", sizeof(nodes[3].url));
    struct drv_doctor_params p = drv_doctor_default_params();
    p.db = "/nonexistent/drover.db";
    p.node_seconds = 20;
    p.bandwidth_seconds = 0; /* the roofline is tested above; spare the test a measurement */
    drv_doctor_collect(nodes, 4, &p);
    drv_http_server_free(os);
    drv_http_server_free(ls);

    const struct drv_doctor_node *o = &nodes[1], *l = &nodes[2], *c = &nodes[3];
    assert_true(nodes[0].have_hw && nodes[0].hw.cpu.cores > 0);
    assert_int_equal(o->kind, DRV_BENCH_KIND_OLLAMA);
    assert_string_equal(o->version, "0.12.3");
    assert_true(o->local && o->have_hw); /* loopback: this machine's hardware */
    assert_int_equal(o->n_models, 1);
    assert_int_equal(o->models[0].num_thread, 12);
    assert_true(o->models[0].file_size == 4109865159ull);
    assert_int_equal(o->speed.state, 1);
    assert_int_equal(o->speed.n, 3);
    assert_true(o->speed.tg[0] > 7.9 && o->speed.tg[0] < 8.1); /* 32 tokens in 4 s */
    assert_string_equal(o->speed.source, "server");
    assert_int_equal(o->think.state, 1);
    assert_int_equal(o->think.off_state, 1);
    assert_has(o->baseline.why, "no bench history at /nonexistent/drover.db");

    assert_int_equal(l->kind, DRV_BENCH_KIND_LLAMA_SERVER);
    assert_string_equal(l->version, "b1-80fb11a");
    assert_true(l->speed.state == 1 && l->speed.tg[0] == 500);
    assert_string_equal(l->think.route, "POST /v1/chat/completions");

    assert_false(c->reachable);
    assert_has(c->error, "GET http://127.0.0.1:1/api/version: ");

    struct drv_doctor_result *rs = calloc(4, sizeof(*rs));
    struct drv_doctor_fleet fleet = {.nodes = nodes, .n = 4};
    for (int i = 0; i < 4; i++)
        drv_doctor_run_checks(&fleet, i, &rs[i]);
    assert_non_null(find(&rs[1], "thinking-budget"));
    if (nodes[0].hw.cpu.cores < 12)
        assert_non_null(find(&rs[1], "threads")); /* num_thread 12 on this machine */
    assert_non_null(find(&rs[2], "thinking-budget"));
    assert_non_null(find(&rs[3], "reachable"));
    free(rs);
    free(nodes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parsers_read_the_recorded_answers),
        cmocka_unit_test(reachable_says_who_does_not_answer),
        cmocka_unit_test(threads_beyond_physical_cores),
        cmocka_unit_test(gpu_unused_when_the_model_sits_in_ram),
        cmocka_unit_test(gpu_backend_missing),
        cmocka_unit_test(partial_offload_that_need_not_be),
        cmocka_unit_test(show_gemma3_slides_as_llama_cpp_does),
        cmocka_unit_test(show_qwen3moe_reads_few_experts),
        cmocka_unit_test(show_gemma4_arrays_give_each_layer),
        cmocka_unit_test(partial_offload_counts_the_sliding_window),
        cmocka_unit_test(thinking_budget_spent_on_reasoning),
        cmocka_unit_test(regression_beyond_the_spread),
        cmocka_unit_test(slow_against_the_roofline),
        cmocka_unit_test(engine_versions_across_the_fleet),
        cmocka_unit_test(rocm_on_the_apu),
        cmocka_unit_test(memory_swap_and_keep_alive),
        cmocka_unit_test(context_cut_by_ollama),
        cmocka_unit_test(churn_and_cut_prompts_from_drover_metrics),
        cmocka_unit_test(report_puts_problems_first),
        cmocka_unit_test(every_check_has_an_id_and_a_summary),
        cmocka_unit_test(collects_and_probes_canned_nodes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
