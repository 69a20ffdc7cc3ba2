// The default training configurations of LoRA and QLoRA tuning, as Kaito's chart ships
// them in the ConfigMaps `lora-params-template` and `qlora-params-template` (key
// training_config.yaml). A workspace without `tuning.config`, or naming one of these
// templates that its namespace does not override, uses the built-in copy.
#pragma once

#include <optional>
#include <string>

namespace kaito::presets {

inline constexpr char kLoraTemplateName[] = "lora-params-template";
inline constexpr char kQloraTemplateName[] = "qlora-params-template";

inline constexpr char kLoraTrainingConfig[] = R"(training_config:
  ModelConfig:
    torch_dtype: "bfloat16"
    local_files_only: true
    device_map: "auto"
  QuantizationConfig:
    load_in_4bit: false
  LoraConfig:
    r: 8
    lora_alpha: 8
    lora_dropout: 0.0
  TrainingArguments:
    output_dir: "/mnt/results"
    ddp_find_unused_parameters: false
    save_strategy: "no"
    per_device_train_batch_size: 1
  DataCollator:
    mlm: true
  DatasetConfig:
    shuffle_dataset: true
    train_test_split: 1
)";

inline constexpr char kQloraTrainingConfig[] = R"(training_config:
  ModelConfig:
    torch_dtype: "bfloat16"
    local_files_only: true
    device_map: "auto"
  QuantizationConfig:
    load_in_4bit: true
    bnb_4bit_quant_type: "nf4"
    bnb_4bit_compute_dtype: "bfloat16"
    bnb_4bit_use_double_quant: true
  LoraConfig:
    r: 8
    lora_alpha: 8
    lora_dropout: 0.0
  TrainingArguments:
    output_dir: "/mnt/results"
    ddp_find_unused_parameters: false
    save_strategy: "no"
    per_device_train_batch_size: 1
  DataCollator:
    mlm: true
  DatasetConfig:
    shuffle_dataset: true
    train_test_split: 1
)";

// The built-in training config named `name` (one of the two templates), if any.
inline std::optional<std::string> BuiltInTrainingConfig(const std::string& name) {
  if (name == kLoraTemplateName) return std::string(kLoraTrainingConfig);
  if (name == kQloraTemplateName) return std::string(kQloraTrainingConfig);
  return std::nullopt;
}

// The template a method uses when `tuning.config` is empty.
inline const char* DefaultTrainingTemplate(const std::string& method) {
  return method == "qlora" ? kQloraTemplateName : kLoraTemplateName;
}

}  // namespace kaito::presets
