#version 330 core
// Face surface: camera-frame positions (mm) and unnormalised vertex normals.
uniform mat4 u_proj;
in vec3 a_pos;
in vec3 a_normal;
out vec3 v_pos;
out vec3 v_normal;

void main() {
    v_pos = a_pos;
    // Unit length before interpolation, so big triangles do not outweigh small ones.
    v_normal = a_normal / max(length(a_normal), 1e-12);
    gl_Position = u_proj * vec4(a_pos, 1.0);
}
