# Writes a C++ file defining `const char* <FUNCTION>()` in namespace
# <NAMESPACE> that returns the text of <INPUT>.
# Called with -DINPUT=<file> -DOUTPUT=<file> -DNAMESPACE=<ns> -DFUNCTION=<name>.
file(READ "${INPUT}" text)
set(body "// Generated from ${INPUT} by cmake/EmbedText.cmake. Do not edit.\n")
string(APPEND body "namespace ${NAMESPACE} {\n\nconst char* ${FUNCTION}() {\n")
string(APPEND body "  return R\"__text__(${text})__text__\";\n}\n\n}  // namespace ${NAMESPACE}\n")
file(WRITE "${OUTPUT}.tmp" "${body}")
configure_file("${OUTPUT}.tmp" "${OUTPUT}" COPYONLY)
