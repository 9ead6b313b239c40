#version 330 core
// Flat fills of the eye and mouth openings (triangle fans from each ring's centroid).
uniform mat4 u_proj;
in vec3 a_pos;

void main() {
    gl_Position = u_proj * vec4(a_pos, 1.0);
}
