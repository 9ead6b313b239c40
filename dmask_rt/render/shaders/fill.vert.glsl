#version 330 core
// Flat fills of the eye and mouth openings (triangle fans from each ring's centroid).
uniform mat4 u_proj;
in vec3 a_pos;
in vec4 a_color_depth;   // rgb, and the depth the fill writes
flat out vec4 v_color_depth;

void main() {
    v_color_depth = a_color_depth;
    gl_Position = u_proj * vec4(a_pos, 1.0);
}
