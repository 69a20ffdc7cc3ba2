# Writes OUTPUT, a C++ file that holds the bytes of INPUT (a FileDescriptorSet) as
# `kaito::ctl::kApiDescriptorSet` (see explain.h).
file(READ ${INPUT} bytes HEX)
string(LENGTH "${bytes}" hex_length)
math(EXPR size "${hex_length} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," array "${bytes}")
string(REGEX REPLACE "((0x..,){20})" "\\1\n" array "${array}")
file(WRITE ${OUTPUT} "// Generated from ${INPUT} by embed_descriptor_set.cmake; do not edit.\n"
  "#include <cstddef>\n\nnamespace kaito::ctl {\n"
  "extern const unsigned char kApiDescriptorSet[];\nextern const size_t kApiDescriptorSetSize;\n"
  "const unsigned char kApiDescriptorSet[] = {\n${array}\n};\n"
  "const size_t kApiDescriptorSetSize = ${size};\n}  // namespace kaito::ctl\n")
