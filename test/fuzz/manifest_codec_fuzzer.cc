// libFuzzer target: any bytes through the manifest codec. Besides the sanitizers' findings
// it checks the codec's contract: nothing throws, every failure names its document, and
// every object decoded prints (`get -o yaml`) as YAML that decodes to the same object.
#include <google/protobuf/util/message_differencer.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/manifest_codec.h"

namespace {

[[noreturn]] void Broken(const std::string& what, const std::string& detail) {
  std::fprintf(stderr, "manifest_codec_fuzzer: %s\n%s\n", what.c_str(), detail.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto docs = kaito::ParseManifests(text);
  if (!docs.ok()) {
    if (docs.status().code() != absl::StatusCode::kInvalidArgument) {
      Broken("a stream error is INVALID_ARGUMENT", docs.status().ToString());
    }
    return 0;
  }
  for (const kaito::ManifestDocument& doc : *docs) {
    if (!doc.status.ok()) {
      if (doc.object != nullptr) Broken("a failed document has no object", doc.Describe());
      if (std::string(doc.status.message()).find(doc.Describe()) == std::string::npos) {
        Broken("a document's error names it", doc.status.ToString());
      }
      continue;
    }
    if (doc.object == nullptr) Broken("a decoded document has its object", doc.Describe());
    const std::string yaml = kaito::MessageToYaml(*doc.object);
    auto again = kaito::ParseManifests(yaml);
    if (!again.ok()) Broken("printed YAML parses", again.status().ToString() + "\n" + yaml);
    if (again->size() != 1 || !(*again)[0].status.ok()) {
      Broken("printed YAML decodes",
             (again->empty() ? std::string("no document") : (*again)[0].status.ToString()) + "\n" +
                 yaml);
    }
    if (!google::protobuf::util::MessageDifferencer::Equals(*doc.object, *(*again)[0].object)) {
      Broken("printed YAML decodes to the same object",
             doc.object->DebugString() + "\n---- printed ----\n" + yaml + "\n---- decoded ----\n" +
                 (*again)[0].object->DebugString());
    }
  }
  return 0;
}
